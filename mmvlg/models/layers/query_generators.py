"""Query generators of DETR-style decoders: the part of MMDetection's ``pre_decoder`` that makes the queries.

A detector asks its generator for the decoder's queries once the encoder has run:

.. code:: text

    encoder outputs (enc) ─ generator ─┬─ query_pos      (bs, num_queries, C)   the decoder's query embeddings
                                       ├─ query_content  (bs, num_queries, C)   its initial target, or None (zeros)
                                       └─ reference      (num_queries, 4) or (bs, num_queries, 4) boxes
                                                         (cx, cy, w, h) in (0, 1), or None (absolute boxes)

Each strategy is a small registered module that holds its own parameters or constant buffers, so the
detector wires one in from a config instead of handling flags.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmdet.structures import OptSampleList
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS

from ..utils import cell_centres
from .positional_encoding import grid_points, sine_embed_points, siri_grid_query_embed


def grid_reference_boxes(num_queries: int) -> Tensor:
    """Reference boxes of the k x k constant grid queries: each box sits on its grid point (see
    :func:`grid_points`) with sides ``1 / (k + 1)``, the spacing of the grid.

    Returns:
        Tensor: (num_queries, 4) as normalized (cx, cy, w, h).
    """
    side = 1.0 / (int(round(num_queries**0.5)) + 1)
    return torch.cat([grid_points(num_queries), torch.full((num_queries, 2), side)], dim=-1)


class BaseQueryGenerator(BaseModule):
    """Base class of the query generators.

    Args:
        num_queries (int): Number of decoder queries.
        embed_dims (int): Width of the queries.

    Subclasses implement :meth:`forward`; those that need the encoder's per-image-token scores (two-stage
    queries) set ``requires_token_scores = True`` and the detector passes ``token_scores``.
    """

    requires_token_scores = False

    def __init__(self, num_queries: int, embed_dims: int, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_queries = num_queries
        self.embed_dims = embed_dims

    @staticmethod
    def _outputs(query_pos: Tensor, query_content: Optional[Tensor] = None,
                 reference: Optional[Tensor] = None) -> Dict[str, Optional[Tensor]]:
        return dict(query_pos=query_pos, query_content=query_content, reference=reference)

    def _expand(self, queries: Tensor, enc: dict) -> Tensor:
        memory = enc['memory']
        return queries[None].expand(memory.shape[0], -1, -1).to(memory.dtype)

    def forward(self, enc: dict, batch_data_samples: OptSampleList = None,
                token_scores: Optional[Tensor] = None) -> Dict[str, Optional[Tensor]]:
        """
        Args:
            enc (dict): The encoder outputs: ``memory`` (bs, N, C), ``memory_mask`` (bs, N) True at padding;
                two-stage generators also read ``num_img_tokens`` (the first ``num_img_tokens`` of ``memory``
                are the image tokens, row-major), ``feat_shape`` (h, w) and ``input_shape`` (H, W) of the
                padded input.
            batch_data_samples (list, optional): With ``img_shape`` (two-stage generators).
            token_scores (Tensor, optional): (bs, num_img_tokens) scores of the image tokens (two-stage
                generators).

        Returns:
            dict: ``query_pos`` (bs, num_queries, C) in ``memory``'s dtype, ``query_content``
            (bs, num_queries, C) or None, ``reference`` ((num_queries, 4) or (bs, num_queries, 4)) or None.
        """
        raise NotImplementedError


@MODELS.register_module()
class LearnedQueries(BaseQueryGenerator):
    """Learnable query embeddings (DETR, MDETR, SiRi): a (num_queries, embed_dims) parameter ``weight``,
    initialized from N(0, 1) as ``nn.Embedding`` does. Boxes are absolute (no reference)."""

    def __init__(self, num_queries: int, embed_dims: int, init_cfg=None) -> None:
        super().__init__(num_queries, embed_dims, init_cfg=init_cfg)
        self.weight = nn.Parameter(torch.empty(num_queries, embed_dims))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """A new N(0, 1) draw (``nn.Embedding``'s initialization; SiRi's fresh re-initialization calls it)."""
        nn.init.normal_(self.weight)

    def forward(self, enc: dict, batch_data_samples: OptSampleList = None,
                token_scores: Optional[Tensor] = None) -> Dict[str, Optional[Tensor]]:
        return self._outputs(self._expand(self.weight, enc))


@MODELS.register_module()
class ConstantGridQueries(BaseQueryGenerator):
    """Constant sine-cosine embeddings of a k x k grid of points (SiRi, appendix A; :func:`grid_points`,
    :func:`sine_embed_points`), not learned and not saved (a non-persistent buffer ``embedding``).

    Args:
        num_queries (int): A square number.
        embed_dims (int): Width of the queries.
        with_reference (bool): Also give each query its grid cell as reference box
            (:func:`grid_reference_boxes`), so that the head predicts boxes relative to it. Defaults to False.
    """

    def __init__(self, num_queries: int, embed_dims: int, with_reference: bool = False, init_cfg=None) -> None:
        super().__init__(num_queries, embed_dims, init_cfg=init_cfg)
        self.register_buffer('embedding', sine_embed_points(grid_points(num_queries), embed_dims), persistent=False)
        self.with_reference = with_reference
        if with_reference:
            self.register_buffer('reference_boxes', grid_reference_boxes(num_queries), persistent=False)
        else:
            self.reference_boxes = None

    def forward(self, enc: dict, batch_data_samples: OptSampleList = None,
                token_scores: Optional[Tensor] = None) -> Dict[str, Optional[Tensor]]:
        return self._outputs(self._expand(self.embedding, enc), reference=self.reference_boxes)


@MODELS.register_module()
class SiRiGridQueries(BaseQueryGenerator):
    """The constant queries of the second decoder in the released multi-task SiRi code: the grid embedding of
    :func:`siri_grid_query_embed` (a non-persistent buffer ``embedding``) through a learnable LayerNorm (the
    authors' ``pos_trans_norm``; parameters ``weight`` and ``bias``, as ``nn.LayerNorm``'s). Boxes are absolute.

    Args:
        num_queries (int): A square number.
        embed_dims (int): Width of the queries.
        eps (float): LayerNorm epsilon. Defaults to 1e-5.
    """

    def __init__(self, num_queries: int, embed_dims: int, eps: float = 1e-5, init_cfg=None) -> None:
        super().__init__(num_queries, embed_dims, init_cfg=init_cfg)
        self.register_buffer('embedding', siri_grid_query_embed(num_queries, embed_dims), persistent=False)
        self.weight = nn.Parameter(torch.ones(embed_dims))
        self.bias = nn.Parameter(torch.zeros(embed_dims))
        self.eps = eps

    def reset_parameters(self) -> None:
        """``nn.LayerNorm``'s initialization: weight 1, bias 0."""
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, enc: dict, batch_data_samples: OptSampleList = None,
                token_scores: Optional[Tensor] = None) -> Dict[str, Optional[Tensor]]:
        queries = F.layer_norm(self.embedding, (self.embed_dims, ), self.weight, self.bias, self.eps)
        return self._outputs(self._expand(queries, enc))


@MODELS.register_module()
class TokenQueries(BaseQueryGenerator):
    """Two-stage queries from the best-scored image tokens of the encoder (Deformable DETR's two-stage
    variant; not part of MDETR/SiRi).

    The ``num_queries`` image tokens with the highest ``token_scores`` (padding excluded) become the queries:
    each query is the sine embedding of its token's cell centre (normalized by the image's ``img_shape``,
    clamped to [0.01, 0.99]), its initial content the token's encoder output, and its reference box sits at
    that centre with sides ``box_size``. The selection and the reference boxes carry no gradient; the content
    does (it is the encoder output).

    Args:
        num_queries (int): Number of queries (at most the number of image tokens).
        embed_dims (int): Width of the queries.
        box_size (float): Sides of the reference boxes, normalized. Defaults to 0.25.
    """

    requires_token_scores = True

    def __init__(self, num_queries: int, embed_dims: int, box_size: float = 0.25, init_cfg=None) -> None:
        super().__init__(num_queries, embed_dims, init_cfg=init_cfg)
        self.box_size = float(box_size)

    def forward(self, enc: dict, batch_data_samples: OptSampleList = None,
                token_scores: Optional[Tensor] = None) -> Dict[str, Optional[Tensor]]:
        """See :meth:`BaseQueryGenerator.forward`; ``reference`` is (bs, num_queries, 4) in the normalized
        coordinates of each image (``img_shape``), like the head's boxes."""
        if token_scores is None or batch_data_samples is None:
            raise ValueError('TokenQueries needs token_scores and batch_data_samples')
        n = enc['num_img_tokens']
        memory = enc['memory']
        if n < self.num_queries:
            raise ValueError(f'token_queries: {n} image tokens, fewer than num_queries={self.num_queries}')
        with torch.no_grad():
            scores = token_scores.float().masked_fill(enc['memory_mask'][:, :n], float('-inf'))
            idx = scores.topk(self.num_queries, dim=1).indices  # (bs, k)
            pixels = cell_centres(enc['feat_shape'], enc['input_shape'], idx.device)[idx]  # (bs, k, 2) as (x, y)
            size = torch.tensor([ds.img_shape for ds in batch_data_samples], dtype=torch.float32,
                                device=idx.device)  # (bs, 2) as (h, w)
            centres = (pixels / size.flip(-1)[:, None, :]).clamp(0.01, 0.99)
            reference = torch.cat([centres, centres.new_full(centres.shape, self.box_size)], dim=-1)
        queries = sine_embed_points(centres, self.embed_dims).to(memory.dtype)
        content = memory[:, :n].gather(1, idx[..., None].expand(-1, -1, memory.shape[-1]))
        return self._outputs(queries, content, reference)
