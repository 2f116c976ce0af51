"""Regions of an image on a patch grid (X-VLM), and resizing of position tables for other resolutions.

* :func:`box_patch_ranges` / :func:`region_mask_from_boxes`: normalized boxes -> the patches inside each box.
  A patch row/column counts as inside when the box overlaps it at all: ``x_min = floor(x1 * w)`` (clamped to
  the last column), ``x_max = ceil(x2 * w)`` (exclusive, clamped to ``w``), and at least one column, the same
  for rows; so a box touching 0 or 1 reaches the first or last patch and a box inside one patch covers it.
  This is the rule of the X-VLM authors' region sampler (in pixels of the resized image there).
* :func:`masked_mean`: region pooling (Swin X-VLM's region [CLS]).
* :func:`interpolate_pos_embed`: ViT absolute position embeddings for another patch grid.
* :func:`interpolate_relative_position_table` / :func:`resize_relative_position_tables`: Swin relative-position
  bias tables ((2w-1)^2, heads) for another window size.
"""
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

# Slack for coordinates computed in floating point (0.3 * 10 = 3.0000000000000004 must not reach patch 3).
_EPS = 1e-6


def _check_boxes(boxes: Tensor) -> None:
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.size(-1) != 4:
        shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f'region boxes must be a (R, 4) tensor of normalized x1, y1, x2, y2, got {shape}')
    if boxes.numel() == 0:
        return
    bad = ~torch.isfinite(boxes).all(-1)
    bad |= (boxes < -_EPS).any(-1) | (boxes > 1 + _EPS).any(-1)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f'region box {i} {boxes[i].tolist()} is outside the image: normalized x1, y1, x2, y2 '
                         f'must lie in [0, 1] ({int(bad.sum())} such boxes)')
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if empty.any():
        i = int(empty.nonzero()[0])
        raise ValueError(f'region box {i} {boxes[i].tolist()} has zero area (x2 <= x1 or y2 <= y1; '
                         f'{int(empty.sum())} such boxes)')


def box_patch_ranges(boxes: Tensor, grid_hw: Sequence[int]) -> Tensor:
    """The patch columns and rows each box covers.

    Args:
        boxes (Tensor): (R, 4) normalized x1, y1, x2, y2 in [0, 1] of the image.
        grid_hw (tuple): (h, w) patches.

    Returns:
        Tensor: (R, 4) long ``x_min, y_min, x_max, y_max``, the max exclusive; every box covers >= 1 patch.

    Raises:
        ValueError: A box outside [0, 1], of zero area, or not finite.
    """
    _check_boxes(boxes)
    gh, gw = int(grid_hw[0]), int(grid_hw[1])
    b = boxes.detach().to(torch.float64)
    x_min = torch.floor(b[:, 0] * gw + _EPS).clamp(0, gw - 1)
    y_min = torch.floor(b[:, 1] * gh + _EPS).clamp(0, gh - 1)
    x_max = torch.maximum(x_min + 1, torch.ceil(b[:, 2] * gw - _EPS).clamp(max=gw))
    y_max = torch.maximum(y_min + 1, torch.ceil(b[:, 3] * gh - _EPS).clamp(max=gh))
    return torch.stack([x_min, y_min, x_max, y_max], -1).long().to(boxes.device)


def region_mask_from_boxes(boxes: Tensor, grid_hw: Sequence[int], with_cls: bool = True) -> Tensor:
    """Boxes -> the tokens of a [CLS] + patch sequence that lie in each box (:func:`box_patch_ranges`).

    Args:
        boxes (Tensor): (R, 4) normalized x1, y1, x2, y2 in [0, 1].
        grid_hw (tuple): (h, w) patches; the patches are in row-major order.
        with_cls (bool): Prepend the [CLS] (always True: every region may attend to it).

    Returns:
        Tensor: (R, 1 + h*w) bool (or (R, h*w) without the [CLS]), True at the [CLS] and the patches in the box.
    """
    gh, gw = int(grid_hw[0]), int(grid_hw[1])
    ranges = box_patch_ranges(boxes, (gh, gw))
    cols = torch.arange(gw, device=boxes.device)
    rows = torch.arange(gh, device=boxes.device)
    in_x = (cols[None] >= ranges[:, 0:1]) & (cols[None] < ranges[:, 2:3])  # (R, w)
    in_y = (rows[None] >= ranges[:, 1:2]) & (rows[None] < ranges[:, 3:4])  # (R, h)
    mask = (in_y[:, :, None] & in_x[:, None, :]).flatten(1)
    if with_cls:
        mask = torch.cat([mask.new_ones(mask.size(0), 1), mask], 1)
    return mask


def normalize_boxes_to_input(boxes: Tensor, valid_hw: Tensor, input_hw: Sequence[int]) -> Tensor:
    """Boxes normalized by each image's valid (unpadded) area -> normalized by the padded input.

    Args:
        boxes (Tensor): (R, 4) normalized by the valid area of their image.
        valid_hw (Tensor): (R, 2) valid height and width in pixels of each box's image.
        input_hw (tuple): (H, W) of the padded input.

    Returns:
        Tensor: (R, 4).
    """
    valid_hw = valid_hw.to(boxes)
    scale = torch.stack([valid_hw[:, 1] / input_hw[1], valid_hw[:, 0] / input_hw[0]], -1).repeat(1, 2)
    return boxes * scale


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean of the tokens where ``mask`` is set (weights when float).

    Args:
        tokens (Tensor): (R, N, C).
        mask (Tensor): (R, N) bool or float weights, with a nonzero sum per row.

    Returns:
        Tensor: (R, C).
    """
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (weights * tokens).sum(1) / weights.sum(1).clamp(min=torch.finfo(tokens.dtype).tiny)


def interpolate_pos_embed(pos_embed: Tensor, grid_hw: Sequence[int], src_grid_hw: Optional[Sequence[int]] = None,
                          num_extra_tokens: int = 1) -> Tensor:
    """Bicubic resize of ViT position embeddings to another patch grid; the extra tokens ([CLS]) are kept.

    Args:
        pos_embed (Tensor): (1, extra + h0*w0, C).
        grid_hw (tuple): Target (h, w).
        src_grid_hw (tuple, optional): (h0, w0); a square grid when None.
        num_extra_tokens (int): Leading tokens that are not patches.

    Returns:
        Tensor: (1, extra + h*w, C); ``pos_embed`` itself when the grids are equal.
    """
    n = pos_embed.size(1) - num_extra_tokens
    if src_grid_hw is None:
        side = int(round(math.sqrt(n)))
        if side * side != n:
            raise ValueError(f'position embedding of {n} patches is not a square grid: pass src_grid_hw')
        src_grid_hw = (side, side)
    h0, w0 = int(src_grid_hw[0]), int(src_grid_hw[1])
    if h0 * w0 != n:
        raise ValueError(f'position embedding has {n} patch positions, not {h0}x{w0}')
    h, w = int(grid_hw[0]), int(grid_hw[1])
    if (h, w) == (h0, w0):
        return pos_embed
    extra, grid = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    grid = grid.reshape(1, h0, w0, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(h, w), mode='bicubic', align_corners=False).to(pos_embed.dtype)
    return torch.cat([extra, grid.permute(0, 2, 3, 1).flatten(1, 2)], 1)


def interpolate_relative_position_table(table: Tensor, window_size: Union[int, Tuple[int, int]]) -> Tensor:
    """Bicubic resize of a Swin relative-position bias table to another window.

    Args:
        table (Tensor): ((2*w0-1)^2, num_heads) for a square window w0.
        window_size (int | tuple): Target window w (square).

    Returns:
        Tensor: ((2*w-1)^2, num_heads); ``table`` itself for the same window.
    """
    if isinstance(window_size, (tuple, list)):
        if window_size[0] != window_size[1]:
            raise ValueError(f'only square windows are supported, got {tuple(window_size)}')
        window_size = window_size[0]
    src = int(round(math.sqrt(table.size(0))))
    if src * src != table.size(0) or src % 2 == 0:
        raise ValueError(f'a relative-position table of {table.size(0)} rows is not (2w-1)^2 for a window w')
    dst = 2 * int(window_size) - 1
    if src == dst:
        return table
    grid = table.t().reshape(1, table.size(1), src, src)
    grid = F.interpolate(grid.float(), size=(dst, dst), mode='bicubic', align_corners=False).to(table.dtype)
    return grid.reshape(table.size(1), dst * dst).t().contiguous()


def resize_relative_position_tables(state_dict: Dict[str, Tensor], own_state: Dict[str, Tensor],
                                    prefix: str = '') -> Dict[str, Tensor]:
    """In place: resize every ``*relative_position_bias_table`` of ``state_dict`` whose shape differs from the
    model's (``own_state``, keys without ``prefix``), and take the model's ``*relative_position_index`` buffers
    (they depend only on the window).

    Args:
        state_dict (dict): The incoming state dict (e.g. a 224 px / window 7 checkpoint).
        own_state (dict): The model's state dict (e.g. 384 px / window 12).
        prefix (str): Prefix of the model's keys in ``state_dict``.

    Returns:
        dict: ``state_dict``.
    """
    for key, own in own_state.items():
        full = prefix + key
        if full not in state_dict or state_dict[full].shape == own.shape:
            continue
        if key.endswith('relative_position_bias_table') and state_dict[full].size(1) == own.size(1):
            window = (int(round(math.sqrt(own.size(0)))) + 1) // 2
            state_dict[full] = interpolate_relative_position_table(state_dict[full], window)
        elif key.endswith('relative_position_index'):
            state_dict[full] = own.clone()
    return state_dict
