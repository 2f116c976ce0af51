"""FIBER's gated cross-attention (arXiv:2206.07643, section 3.1, eq. 1)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GatedCrossAttention(nn.Module):
    r"""Gated cross-attention of `FIBER <https://arxiv.org/abs/2206.07643>`_, added to a self-attention output.

    FIBER's layer (eq. 1) is :math:`\tilde x = \mathrm{SelfAtt}(x)`,
    :math:`x = x + \tilde x + \alpha\,\mathrm{CrossAtt}(\tilde x, y)`, :math:`x = x + \mathrm{FFN}(x)`. This
    module computes the gated term and adds it to :math:`\tilde x`:

    .. code:: text

        x_sa ─┬──────────────────────────────────────────────(+)─ x_sa + alpha * out_proj(attn)
              └─ query_norm ─ q_proj ─┐                        │
                                      ├─ SDPA ─ out_proj ─ * alpha
        context ─ kv_proj ─ (k, v) ───┘

    ``alpha`` is a learnable scalar initialized to 0, so at initialization (and whenever it is 0) the output
    equals ``x_sa`` exactly and the host layer computes what it did without fusion.

    As in the authors' code, the image-to-text attention of a Swin block normalizes its queries with a
    LayerNorm (``query_norm=True``) and the text-to-image attention of a RoBERTa layer does not. The
    attention is global over the context: every image token of a Swin block attends to all text tokens of
    its sample (the authors repeat the text per window, which is the same computation).

    Args:
        embed_dims (int): Width C of the host stream (queries and output).
        context_dims (int): Width of the other modality's features (keys and values).
        num_heads (int): Attention heads; must divide ``embed_dims``.
        attn_drop (float): Dropout on the attention weights (training only). Defaults to 0.
        proj_drop (float): Dropout after the output projection. Defaults to 0.
        query_norm (bool): LayerNorm the queries first. Defaults to True.
        alpha_init (float): Initial gate. Defaults to 0 (the paper's).
    """

    def __init__(self, embed_dims: int, context_dims: int, num_heads: int, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, query_norm: bool = True, alpha_init: float = 0.0) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} is not divisible by num_heads={num_heads}')
        self.embed_dims, self.context_dims, self.num_heads = embed_dims, context_dims, num_heads
        self.attn_drop = attn_drop
        self.query_norm = nn.LayerNorm(embed_dims) if query_norm else nn.Identity()
        self.q_proj = nn.Linear(embed_dims, embed_dims)
        self.kv_proj = nn.Linear(context_dims, 2 * embed_dims)
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        self.alpha_init = float(alpha_init)
        self.alpha = nn.Parameter(torch.full((1, ), self.alpha_init))
        self.reset_parameters()

    def reset_parameters(self, alpha_init: Optional[float] = None) -> None:
        """Truncated-normal (std 0.02) projections with zero biases, as Swin/RoBERTa initialize their linear
        layers, and the gate set to ``alpha_init`` (the constructor's when None)."""
        alpha_init = self.alpha_init if alpha_init is None else alpha_init
        for lin in (self.q_proj, self.kv_proj, self.out_proj):
            nn.init.trunc_normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)
        if isinstance(self.query_norm, nn.LayerNorm):
            self.query_norm.reset_parameters()
        with torch.no_grad():
            self.alpha.fill_(alpha_init)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, -1).transpose(1, 2)

    def attention(self, x: Tensor, context: Tensor, context_padding_mask: Optional[Tensor] = None) -> Tensor:
        """The ungated cross-attention ``CrossAtt(x, context)``.

        Args:
            x (Tensor): Queries (bs, N, C).
            context (Tensor): Keys/values (bs, M, C_ctx).
            context_padding_mask (Tensor, optional): (bs, M) bool, True at padded context positions. A sample
                whose context is all padding attends to all of it (no NaN).

        Returns:
            Tensor: (bs, N, C).
        """
        q = self._heads(self.q_proj(self.query_norm(x)))
        k, v = self.kv_proj(context).split(self.embed_dims, dim=-1)
        k, v = self._heads(k), self._heads(v)
        mask = None
        if context_padding_mask is not None:
            keep = ~context_padding_mask.bool()
            keep = keep | ~keep.any(-1, keepdim=True)  # never a fully masked row
            mask = keep[:, None, None, :]
        out = F.scaled_dot_product_attention(q.to(k.dtype), k, v, attn_mask=mask,
                                             dropout_p=self.attn_drop if self.training else 0.0)
        out = out.transpose(1, 2).flatten(2)
        return self.proj_drop(self.out_proj(out))

    def forward(self, x: Tensor, context: Tensor, context_padding_mask: Optional[Tensor] = None) -> Tensor:
        """``x + alpha * CrossAtt(x, context)``; shapes as in :meth:`attention`. Returns (bs, N, C)."""
        return x + self.alpha.to(x.dtype) * self.attention(x, context, context_padding_mask)
