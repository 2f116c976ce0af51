"""Box post-processing and feature-map geometry shared by the grounding heads and detectors."""
from typing import Optional, Sequence

import torch
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from torch import Tensor


def denormalize_boxes(boxes: Tensor, img_shape: Sequence[int]) -> Tensor:
    """Normalized (cx, cy, w, h) boxes, as DETR-style heads predict them, to (x1, y1, x2, y2) pixels.

    Args:
        boxes (Tensor): (..., 4) normalized (cx, cy, w, h) in [0, 1] of the image ``img_shape``.
        img_shape (tuple): (h, w) of the image the boxes are normalized by (the network input before
            padding, ``metainfo['img_shape']``).

    Returns:
        Tensor: (..., 4) (x1, y1, x2, y2) in pixels of ``img_shape``.
    """
    img_h, img_w = img_shape[:2]
    return bbox_cxcywh_to_xyxy(boxes) * boxes.new_tensor([img_w, img_h, img_w, img_h])


def rescale_boxes(bboxes: Tensor, img_meta: dict) -> Tensor:
    """Map (x1, y1, x2, y2) boxes in pixels of the network input back to the original image: divide by
    ``scale_factor`` and clip to ``ori_shape`` (the post-processing that a test-time ``Resize`` calls for; each
    step is skipped when its key is missing from ``img_meta``).

    Args:
        bboxes (Tensor): (N, 4) (x1, y1, x2, y2) in pixels of ``img_meta['img_shape']``.
        img_meta (dict): ``scale_factor`` as (w_scale, h_scale) (mmdet's ``Resize``), ``ori_shape`` as (h, w).

    Returns:
        Tensor: (N, 4) (x1, y1, x2, y2) in pixels of the original image (a new tensor).
    """
    out = bboxes.clone()
    if img_meta.get('scale_factor') is not None:
        sx, sy = img_meta['scale_factor'][:2]
        out = out / out.new_tensor([sx, sy, sx, sy])
    if img_meta.get('ori_shape') is not None:
        oh, ow = img_meta['ori_shape'][:2]
        out[..., 0::2] = out[..., 0::2].clamp(0, ow)
        out[..., 1::2] = out[..., 1::2].clamp(0, oh)
    return out


def cell_centres(feat_shape: Sequence[int], input_shape: Optional[Sequence[int]] = None,
                 device: Optional[torch.device] = None) -> Tensor:
    """Centres of the cells of an (h, w) feature map, in row-major order (cell ``i * w + j`` is row ``i``,
    column ``j``: the order of ``feat.flatten(2)``).

    Args:
        feat_shape (tuple): (h, w) of the feature map.
        input_shape (tuple, optional): (H, W) of the (padded) input the map covers. When given, the centres are
            in its pixels, ``((j + 0.5) * W / w, (i + 0.5) * H / h)``; otherwise normalized to the map,
            ``((j + 0.5) / w, (i + 0.5) / h)`` in (0, 1).
        device: Device of the result.

    Returns:
        Tensor: (h * w, 2) float32 as (x, y).
    """
    h, w = feat_shape[:2]
    ys = torch.arange(h, device=device, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=device, dtype=torch.float32) + 0.5
    if input_shape is None:
        ys, xs = ys / h, xs / w
    else:
        ys, xs = ys * (input_shape[0] / h), xs * (input_shape[1] / w)
    cy, cx = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([cx.flatten(), cy.flatten()], dim=-1)
