"""DETR/MDETR transformer encoder and decoder (post-norm, batch-first, SDPA attention)."""
import copy
from typing import List, Optional, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS

from .attention import MultiheadSDPA


def _with_pos(x: Tensor, pos: Optional[Tensor]) -> Tensor:
    return x if pos is None else x + pos


class FFN(nn.Module):
    """Two linear layers with ReLU and dropout (DETR's feed-forward block)."""

    def __init__(self, embed_dims: int, feedforward_channels: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(embed_dims, feedforward_channels)
        self.linear2 = nn.Linear(feedforward_channels, embed_dims)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(torch.relu(self.linear1(x))))


class VLEncoderLayer(nn.Module):
    """Post-norm self-attention layer over the joint image+text sequence; ``pos`` is added to queries and
    keys (zeros at text positions)."""

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, feedforward_channels: int = 2048,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiheadSDPA(embed_dims, num_heads, dropout)
        self.ffn = FFN(embed_dims, feedforward_channels, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(embed_dims), nn.LayerNorm(embed_dims)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x: Tensor, pos: Optional[Tensor], padding_mask: Optional[Tensor],
                need_weights: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        qk = _with_pos(x, pos)
        y, w = self.self_attn(qk, qk, x, padding_mask, need_weights)
        x = self.norm1(x + self.dropout1(y))
        x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x, w


class DetrDecoderLayer(nn.Module):
    """Post-norm DETR decoder layer: query self-attention, cross-attention to the encoder memory (image
    and text tokens), FFN."""

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, feedforward_channels: int = 2048,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = MultiheadSDPA(embed_dims, num_heads, dropout)
        self.cross_attn = MultiheadSDPA(embed_dims, num_heads, dropout)
        self.ffn = FFN(embed_dims, feedforward_channels, dropout)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(embed_dims) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))

    def forward(self, tgt: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Optional[Tensor],
                memory_mask: Optional[Tensor]) -> Tensor:
        qk = tgt + query_pos
        y, _ = self.self_attn(qk, qk, tgt)
        tgt = self.norm1(tgt + self.dropout1(y))
        y, _ = self.cross_attn(tgt + query_pos, _with_pos(memory, memory_pos), memory, memory_mask)
        tgt = self.norm2(tgt + self.dropout2(y))
        return self.norm3(tgt + self.dropout3(self.ffn(tgt)))


@MODELS.register_module()
class VLTransformerEncoder(BaseModule):
    """Stack of :class:`VLEncoderLayer` (MDETR's cross-modal encoder).

    Args:
        num_layers (int): Number of layers (6 in MDETR/SiRi).
        layer_cfg (dict): ``embed_dims``, ``num_heads``, ``feedforward_channels``, ``dropout``.
    """

    def __init__(self, num_layers: int = 6, layer_cfg: Optional[dict] = None, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        layer = VLEncoderLayer(**(layer_cfg or {}))
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])
        self.embed_dims = layer.norm1.normalized_shape[0]

    def init_weights(self) -> None:
        super().init_weights()
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, x: Tensor, pos: Optional[Tensor], padding_mask: Optional[Tensor],
                need_weights: bool = False) -> Tuple[Tensor, List[Tensor]]:
        """
        Args:
            x (Tensor): (bs, num_tokens, C), image tokens followed by text tokens.
            pos (Tensor): (bs, num_tokens, C) position embeddings.
            padding_mask (Tensor): (bs, num_tokens), True at padding.
            need_weights (bool): Return every layer's attention weights (bs, num_tokens, num_tokens).
        """
        weights = []
        for layer in self.layers:
            x, w = layer(x, pos, padding_mask, need_weights)
            if need_weights:
                weights.append(w)
        return x, weights


@MODELS.register_module()
class DetrTransformerDecoderSDPA(BaseModule):
    """Stack of :class:`DetrDecoderLayer` with a shared final LayerNorm applied to every layer's output
    (DETR's ``return_intermediate``)."""

    def __init__(self, num_layers: int = 6, layer_cfg: Optional[dict] = None, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        layer = DetrDecoderLayer(**(layer_cfg or {}))
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])
        self.embed_dims = layer.norm1.normalized_shape[0]
        self.norm = nn.LayerNorm(self.embed_dims)

    def init_weights(self) -> None:
        super().init_weights()
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, query_pos: Tensor, memory: Tensor, memory_pos: Optional[Tensor],
                memory_mask: Optional[Tensor], query_content: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            query_pos (Tensor): (bs, num_queries, C) query embeddings.
            memory (Tensor): (bs, num_tokens, C) encoder output.
            memory_pos (Tensor): (bs, num_tokens, C).
            memory_mask (Tensor): (bs, num_tokens), True at padding.
            query_content (Tensor, optional): (bs, num_queries, C) initial target (DETR: zeros, the
                default; two-stage queries: the selected encoder tokens).

        Returns:
            Tensor: (num_layers, bs, num_queries, C), the normalized output of every layer.
        """
        tgt = torch.zeros_like(query_pos) if query_content is None else query_content
        outs = []
        for layer in self.layers:
            tgt = layer(tgt, query_pos, memory, memory_pos, memory_mask)
            outs.append(self.norm(tgt))
        return torch.stack(outs)
