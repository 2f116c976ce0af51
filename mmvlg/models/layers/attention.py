"""Multi-head attention on :func:`torch.nn.functional.scaled_dot_product_attention`."""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MultiheadSDPA(nn.Module):
    """Batch-first multi-head attention computed with ``scaled_dot_product_attention`` (fused kernels:
    flash / memory-efficient on GPU, a fused CPU kernel otherwise).

    Its parameters are laid out as :class:`torch.nn.MultiheadAttention`'s (``in_proj_weight``,
    ``in_proj_bias``, ``out_proj``), so weights move between the two without conversion.

    Args:
        embed_dims (int): Feature size C.
        num_heads (int): Number of heads; must divide ``embed_dims``.
        dropout (float): Dropout on the attention weights during training.
    """

    def __init__(self, embed_dims: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} is not divisible by num_heads={num_heads}')
        self.embed_dims, self.num_heads, self.dropout = embed_dims, num_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dims, embed_dims))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dims))
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def reset_parameters(self) -> None:
        """Draw new weights as the constructor does (Xavier-uniform input projection, zero biases), e.g. for
        re-initialization (:class:`~mmvlg.engine.hooks.SiRiHook`)."""
        self.out_proj.reset_parameters()
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        """
        Args:
            query (Tensor): (bs, num_q, C).
            key (Tensor): (bs, num_k, C).
            value (Tensor): (bs, num_k, C).
            key_padding_mask (Tensor, optional): (bs, num_k), True at padded keys.
            need_weights (bool): Also return the attention weights averaged over heads (computed without
                the fused kernel; for visualisation).

        Returns:
            tuple: Output (bs, num_q, C) and weights (bs, num_q, num_k) or None.
        """
        c = self.embed_dims
        w, b = self.in_proj_weight, self.in_proj_bias
        if query is key and key is value:
            q, k, v = F.linear(query, w, b).split(c, dim=-1)
        else:
            q = F.linear(query, w[:c], b[:c])
            k = F.linear(key, w[c:2 * c], b[c:2 * c])
            v = F.linear(value, w[2 * c:], b[2 * c:])
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        mask = None
        if key_padding_mask is not None:
            mask = (~key_padding_mask)[:, None, None, :]  # True = attend
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            if mask is not None:
                logits = logits.masked_fill(~mask, float('-inf'))
            attn = logits.softmax(-1)
            weights = attn.mean(1)
            out = F.dropout(attn, p, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = out.transpose(1, 2).flatten(2)
        return self.out_proj(out), weights
