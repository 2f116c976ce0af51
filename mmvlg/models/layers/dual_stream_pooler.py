"""Pooled (sentence/image-level) features of the two streams of a vision-language encoder, with the pooling
and the projections as configurable parts (FIBER, X-VLM, ALBEF, SOHO's pre-training heads)."""
from typing import Dict, Optional, Tuple

import torch
from mmdet.utils import OptConfigType
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS

from .mlp import build_projection

POOLINGS = ('cls', 'mean')


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


def pool_tokens(tokens: Tensor, valid: Optional[Tensor], pooling: str) -> Tensor:
    """(bs, N, C) tokens -> (bs, C): ``'cls'`` the first token, ``'mean'`` the mean of the tokens where
    ``valid`` (bs, N) is True (all when None)."""
    if pooling == 'cls':
        return tokens[:, 0]
    if pooling == 'mean':
        return masked_mean(tokens, valid)
    raise ValueError(f'pooling must be one of {POOLINGS}, got {pooling!r}')


@MODELS.register_module()
class DualStreamPooler(BaseModule):
    """Project the image and text tokens to ``embed_dims`` and pool each stream to one vector.

    Per stream: a projection (``text_proj``/``image_proj``: a ``Linear``, an ``MLPBlock``, ... or None), a
    pooling (``'cls'``: first token; ``'mean'``: mean of the valid tokens) and, with ``tanh_pooler``, BERT's
    pooler ``tanh(W x + b)`` (``text_pooler``/``image_pooler``). With ``pool_first=False`` every token is
    projected, then pooled (the projected tokens are returned too, e.g. for an MLM head); with True the pooled
    vector is projected (X-VLM/ALBEF's ``vision_proj(x[:, 0])``; the same for a linear projection, cheaper).

    The defaults are FIBER's coarse-grained poolers (:class:`~mmvlg.models.layers.CrossModalPooler`, with the same
    keys ``text_proj``, ``image_proj``, ``text_pooler.dense``, ``image_pooler.dense``): text by its first token,
    image by the mean of its valid tokens, both through a tanh pooler. X-VLM's ITC:
    ``dict(image_pooling='cls', tanh_pooler=False, pool_first=True)``.

    Args:
        img_dims (int): Width of the image tokens.
        text_dims (int): Width of the text tokens.
        embed_dims (int): Common width. Defaults to 768.
        text_pooling (str): ``'cls'`` or ``'mean'``. Defaults to ``'cls'``.
        image_pooling (str): ``'cls'`` or ``'mean'``. Defaults to ``'mean'``.
        text_proj (dict, optional): Text projection (see :func:`~mmvlg.models.layers.mlp.build_projection`).
            Defaults to ``dict(type='Linear')``.
        image_proj (dict, optional): Image projection. Defaults to ``dict(type='Linear')``.
        tanh_pooler (bool): A dense + tanh pooler after the pooling. Defaults to True.
        pool_first (bool): Pool, then project. Defaults to False.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self, img_dims: int, text_dims: int, embed_dims: int = 768, text_pooling: str = 'cls',
                 image_pooling: str = 'mean', text_proj: OptConfigType = dict(type='Linear'),
                 image_proj: OptConfigType = dict(type='Linear'), tanh_pooler: bool = True,
                 pool_first: bool = False, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        for p in (text_pooling, image_pooling):
            if p not in POOLINGS:
                raise ValueError(f'DualStreamPooler: pooling must be one of {POOLINGS}, got {p!r}')
        self.embed_dims = embed_dims
        self.text_pooling, self.image_pooling = text_pooling, image_pooling
        self.pool_first = pool_first
        self.text_proj = build_projection(text_proj, text_dims, embed_dims)
        self.image_proj = build_projection(image_proj, img_dims, embed_dims)
        self.text_pooler = FirstTokenPooler(embed_dims) if tanh_pooler else None
        self.image_pooler = FirstTokenPooler(embed_dims) if tanh_pooler else None

    @staticmethod
    def _tanh(pooler: Optional[nn.Module], x: Tensor) -> Tensor:
        return x if pooler is None else pooler(x.unsqueeze(1))

    def _pool(self, tokens: Tensor, valid: Optional[Tensor], proj: nn.Module, pooling: str,
              pooler: Optional[nn.Module]) -> Tuple[Tensor, Optional[Tensor]]:
        if self.pool_first:
            return self._tanh(pooler, proj(pool_tokens(tokens, valid, pooling))), None
        projected = proj(tokens)
        return self._tanh(pooler, pool_tokens(projected, valid, pooling)), projected

    def pool_image(self, img_tokens: Tensor, img_valid: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
        """The image stream alone: its pooled vector (bs, D) and, unless ``pool_first``, its projected tokens
        (bs, N, D) (None otherwise). The streams are independent, so a dual encoder can embed a gallery of
        images without texts (the retrieval protocol)."""
        return self._pool(img_tokens, img_valid, self.image_proj, self.image_pooling, self.image_pooler)

    def pool_text(self, text_tokens: Tensor, text_valid: Optional[Tensor] = None
                  ) -> Tuple[Tensor, Optional[Tensor]]:
        """The text stream alone, as :meth:`pool_image`."""
        return self._pool(text_tokens, text_valid, self.text_proj, self.text_pooling, self.text_pooler)

    def forward(self, img_tokens: Tensor, img_valid: Optional[Tensor], text_tokens: Tensor,
                text_valid: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """
        Args:
            img_tokens (Tensor): (bs, N, C_i).
            img_valid (Tensor, optional): (bs, N) bool, False at padded image positions.
            text_tokens (Tensor): (bs, L, C_t).
            text_valid (Tensor, optional): (bs, L) bool, False at padding (used by ``'mean'`` text pooling).

        Returns:
            dict: ``text_cls`` (bs, D), ``image_cls`` (bs, D) and ``cls`` (bs, 2D), their concatenation (text
            first); unless ``pool_first``, also ``text`` (bs, L, D) and ``image`` (bs, N, D), the projected tokens.
        """
        out = {}
        out['text_cls'], text = self.pool_text(text_tokens, text_valid)
        out['image_cls'], image = self.pool_image(img_tokens, img_valid)
        if not self.pool_first:
            out['text'], out['image'] = text, image
        out['cls'] = torch.cat([out['text_cls'], out['image_cls']], dim=-1)
        return out
