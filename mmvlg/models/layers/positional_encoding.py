import math

import torch
from torch import Tensor


def grid_points(num_points: int) -> Tensor:
    """The k x k grid points (i/(k+1), j/(k+1)), i, j = 1..k, k = sqrt(num_points) (SiRi's constant
    queries, appendix A).

    Returns:
        Tensor: (num_points, 2) as (x, y) in (0, 1).
    """
    k = int(round(math.sqrt(num_points)))
    if k * k != num_points:
        raise ValueError(f'constant grid queries need a square number of queries, got {num_points}')
    ticks = torch.arange(1, k + 1, dtype=torch.float32) / (k + 1)
    ys, xs = torch.meshgrid(ticks, ticks, indexing='ij')
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


def sine_embed_points(points: Tensor, embed_dims: int, temperature: float = 10000.,
                      scale: float = 2 * math.pi) -> Tensor:
    """Sine-cosine embedding of normalized 2-D points, laid out as DETR's 2-D sine encoding (y half then
    x half, interleaved sin/cos).

    Args:
        points (Tensor): (..., 2) as (x, y) in [0, 1].
        embed_dims (int): Output size (even).

    Returns:
        Tensor: (..., embed_dims).
    """
    num_feats = embed_dims // 2
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=points.device)
    dim_t = temperature**(2 * (dim_t // 2) / num_feats)
    px = points[..., 0, None] * scale / dim_t
    py = points[..., 1, None] * scale / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=-1).flatten(-2)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=-1).flatten(-2)
    return torch.cat((py, px), dim=-1)


def siri_grid_query_embed(num_queries: int, embed_dims: int, temperature: float = 10000.) -> Tensor:
    """The constant queries of the second decoder of multi-task SiRi as the authors' released code computes
    them (qumengxue/siri-vg, ``models/gauss_map.py``, ``make_all_points_gaussian``), before its LayerNorm.

    The k x k points (k = sqrt(num_queries)) at ``100 * i / (k + 1)``, i = 1..k, on a 100 x 100 grid (20, 40, 60,
    80 for 16 queries), ordered as ``torch.meshgrid`` with 'ij' indexing orders them (the first coordinate varies
    slowest), are divided by 99, passed through a **sigmoid** (as the authors' ``get_proposal_pos_embed`` does),
    scaled by 2*pi, and each coordinate gets ``embed_dims // 2`` interleaved sine/cosine features (first
    coordinate, then second). This differs from :func:`sine_embed_points` (mmvlg's grid queries), which is why
    released multi-task SiRi checkpoints need it.

    Returns:
        Tensor: (num_queries, embed_dims).
    """
    k = int(round(math.sqrt(num_queries)))
    if k * k != num_queries:
        raise ValueError(f'SiRi grid queries need a square number of queries, got {num_queries}')
    ticks = 100. * torch.arange(1, k + 1, dtype=torch.float32) / (k + 1)
    first, second = torch.meshgrid(ticks, ticks, indexing='ij')
    points = torch.stack([first.flatten(), second.flatten()], dim=-1) / 99.
    num_feats = embed_dims // 2
    dim_t = torch.arange(num_feats, dtype=torch.float32)
    dim_t = temperature**(2 * (dim_t // 2) / num_feats)
    pos = points.sigmoid()[..., None] * (2 * math.pi) / dim_t  # (num_queries, 2, num_feats)
    pos = torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(1)
    return pos
