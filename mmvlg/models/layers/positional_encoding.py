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
