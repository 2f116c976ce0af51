"""Sequence and pooled features of the two streams of a vision-language encoder (FIBER's coarse heads)."""
from typing import Dict, Optional

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn


def masked_mean(tokens: Tensor, valid: Optional[Tensor]) -> Tensor:
    """Mean of (bs, N, C) ``tokens`` over the positions where ``valid`` (bs, N) is True (all when None)."""
    if valid is None:
        return tokens.mean(dim=1)
    w = valid.to(tokens.dtype).unsqueeze(-1)
    return (tokens * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)


class FirstTokenPooler(nn.Module):
    """``tanh(W x_0 + b)`` of the first token (BERT's pooler)."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dims, dims)

    def forward(self, tokens: Tensor) -> Tensor:
        return torch.tanh(self.dense(tokens[:, 0]))


class CrossModalPooler(BaseModule):
    """Project both streams to ``embed_dims`` and pool them: the text by its first token, the image by the mean
    of its (valid) tokens, each followed by a BERT-style pooler (dense + tanh), as FIBER's coarse-grained model.

    Args:
        img_dims (int): Width of the image tokens.
        text_dims (int): Width of the text tokens.
        embed_dims (int): Common width (768 in FIBER).
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self, img_dims: int, text_dims: int, embed_dims: int = 768, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.text_proj = nn.Linear(text_dims, embed_dims)
        self.image_proj = nn.Linear(img_dims, embed_dims)
        self.text_pooler = FirstTokenPooler(embed_dims)
        self.image_pooler = FirstTokenPooler(embed_dims)

    def forward(self, img_tokens: Tensor, img_valid: Optional[Tensor], text_tokens: Tensor) -> Dict[str, Tensor]:
        """
        Args:
            img_tokens (Tensor): (bs, N, C_i).
            img_valid (Tensor, optional): (bs, N) bool, False at padded image positions.
            text_tokens (Tensor): (bs, L, C_t).

        Returns:
            dict: ``text`` (bs, L, D) and ``image`` (bs, N, D) projected tokens, ``text_cls`` (bs, D),
            ``image_cls`` (bs, D) and ``cls`` (bs, 2D), their concatenation (text first).
        """
        text = self.text_proj(text_tokens)
        image = self.image_proj(img_tokens)
        text_cls = self.text_pooler(text)
        image_cls = self.image_pooler(masked_mean(image, img_valid).unsqueeze(1))
        return dict(text=text, image=image, text_cls=text_cls, image_cls=image_cls,
                    cls=torch.cat([text_cls, image_cls], dim=-1))
