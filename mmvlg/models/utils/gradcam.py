"""Grad-CAM of a text-to-image cross-attention layer, and scoring of box proposals on the resulting heat map.

X-VLM's weakly supervised referring-expression comprehension (arXiv:2111.08276, section 4.2): the gradient of the
ITM match score with respect to the cross-attention probabilities of one cross layer, clamped at 0, times those
probabilities, averaged over the heads and the expression's tokens, gives a map on the patch grid; each proposal
box is scored by the map's sum inside it divided by ``area ** alpha`` (``alpha = 0.5``: the square root).
"""
import copy
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CrossAttentionRecorder:
    """Record the attention probabilities of one Hugging Face (BERT/RoBERTa) attention module, with their
    gradients, while the context manager is open; the module's outputs are unchanged.

    Inside the ``with`` block the module computes its attention eagerly (on a private copy of its config:
    scaled dot-product kernels do not return the probabilities) and each forward appends the (bs, heads, L, M)
    probabilities to :attr:`maps`; after ``backward()``, :attr:`grads` holds their gradients in the same order.

    Args:
        module (nn.Module): The attention's inner module (``BertCrossAttention`` /``BertSelfAttention``: the
            ``.self`` of a ``BertAttention``), returning ``(output, probabilities)``.
    """

    def __init__(self, module: nn.Module) -> None:
        if not hasattr(module, 'config'):
            raise TypeError(f'CrossAttentionRecorder: {type(module).__name__} has no config; pass the inner '
                            'attention module (e.g. HFTextEncoder.cross_attns["9"].self)')
        self.module = module
        self.maps: List[Tensor] = []
        self._handle = None
        self._config = None

    def _record(self, module, args, output) -> None:
        probs = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None
        if probs is None:
            raise RuntimeError(f'CrossAttentionRecorder: {type(module).__name__} returned no attention '
                               'probabilities')
        if probs.requires_grad:
            probs.retain_grad()
        self.maps.append(probs)

    @property
    def grads(self) -> List[Optional[Tensor]]:
        """The gradients of :attr:`maps` (None for a map that no backward reached)."""
        return [m.grad for m in self.maps]

    def __enter__(self) -> 'CrossAttentionRecorder':
        self.maps = []
        self._config = self.module.config
        eager = copy.copy(self._config)
        eager._attn_implementation = 'eager'
        self.module.config = eager
        self._handle = self.module.register_forward_hook(self._record)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
        self.module.config = self._config


def patch_grid(num_patches: int, input_hw: Sequence[int]) -> Tuple[int, int]:
    """The (h, w) grid of ``num_patches`` row-major patch tokens of an input of ``input_hw`` pixels (the same
    stride on both sides: 16 for ViT-B/16, 32 for Swin-B's last stage).

    Raises:
        ValueError: No grid of that stride has ``num_patches`` cells.
    """
    H, W = int(input_hw[0]), int(input_hw[1])
    stride = math.sqrt(H * W / max(num_patches, 1))
    h = max(1, round(H / stride))
    w = num_patches // h
    if h * w != num_patches:
        raise ValueError(f'patch_grid: {num_patches} patch tokens do not form a grid of one stride over a '
                         f'{H}x{W} input')
    return h, w


def gradcam_from_attention(attention: Tensor, grad: Tensor, text_mask: Optional[Tensor], grid_hw: Sequence[int],
                           num_prefix_tokens: int = 1) -> Tensor:
    """Grad-CAM of cross-attention maps: ``attention x clamp(grad, min=0)``, averaged over the heads and the real
    text tokens, the visual prefix tokens (the [CLS]) dropped, reshaped to the patch grid.

    The authors average over every (padded) text position; averaging over the real ones instead only scales
    each expression's map by a constant, which changes no proposal ranking.

    Args:
        attention (Tensor): (bs, heads, L, P + N) text-to-image attention probabilities.
        grad (Tensor): (bs, heads, L, P + N) their gradients.
        text_mask (Tensor, optional): (bs, L), nonzero at the real text tokens (None: all).
        grid_hw (tuple): (h, w) with h * w = N.
        num_prefix_tokens (int): Visual tokens before the patches (P; 1: the [CLS]). Defaults to 1.

    Returns:
        Tensor: (bs, h, w) maps, >= 0.
    """
    if attention.shape != grad.shape:
        raise ValueError(f'gradcam_from_attention: attention {tuple(attention.shape)} and gradient '
                         f'{tuple(grad.shape)} differ')
    h, w = int(grid_hw[0]), int(grid_hw[1])
    bs, _, length, total = attention.shape
    if total - num_prefix_tokens != h * w:
        raise ValueError(f'gradcam_from_attention: {total - num_prefix_tokens} patch tokens, but the grid is '
                         f'{h}x{w}')
    cam = (attention * grad.clamp(min=0))[..., num_prefix_tokens:].mean(dim=1)  # (bs, L, N)
    if text_mask is None:
        cam = cam.mean(dim=1)
    else:
        weight = text_mask.to(cam.dtype)[..., None]
        cam = (cam * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1)
    return cam.reshape(bs, h, w)


def heatmap_to_image(heatmap: Tensor, input_hw: Sequence[int], img_shape: Sequence[int],
                     ori_shape: Optional[Sequence[int]] = None, mode: str = 'bicubic') -> Tensor:
    """A map on the patch grid of a padded network input -> the original image's pixels.

    Upsampled to ``input_hw`` (bicubic as the authors by default), cropped to the valid ``img_shape`` (the
    padding left out) and resized to ``ori_shape`` (undoing the test-time resize).

    Args:
        heatmap (Tensor): (h, w) map.
        input_hw (tuple): (H, W) of the padded input.
        img_shape (tuple): (h, w) valid part of the input.
        ori_shape (tuple, optional): (h, w) of the original image (None: ``img_shape``).
        mode (str): Interpolation mode. Defaults to ``'bicubic'``.

    Returns:
        Tensor: (H_ori, W_ori) float map.
    """
    kw = dict(mode=mode) if mode == 'nearest' else dict(mode=mode, align_corners=False)
    m = F.interpolate(heatmap[None, None].float(), size=tuple(int(s) for s in input_hw[:2]), **kw)
    h, w = int(img_shape[0]), int(img_shape[1])
    m = m[..., :h, :w]
    if ori_shape is not None and tuple(int(s) for s in ori_shape[:2]) != (h, w):
        m = F.interpolate(m, size=tuple(int(s) for s in ori_shape[:2]), **kw)
    return m[0, 0]


def score_proposals(heatmap: Tensor, boxes: Tensor, alpha: float = 0.5) -> Tensor:
    """Score each box by the heat map's sum inside it divided by ``area ** alpha`` (X-VLM: ``alpha = 0.5``).

    The box covers the pixels ``[int(y1), int(y2)) x [int(x1), int(x2))`` as the authors slice it, clipped to the
    map (parts past a border count nothing; ``area`` is the box's own ``(x2 - x1) * (y2 - y1)``); a box of zero
    area, or wholly outside the map, scores 0.

    Args:
        heatmap (Tensor): (H, W) map in the boxes' pixels.
        boxes (Tensor): (k, 4) x1, y1, x2, y2 pixels.
        alpha (float): The area exponent. Defaults to 0.5.

    Returns:
        Tensor: (k,) scores.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float32, device=heatmap.device).reshape(-1, 4)
    H, W = heatmap.shape[-2:]
    table = F.pad(heatmap.float().cumsum(0).cumsum(1), (1, 0, 1, 0))  # (H + 1, W + 1) summed-area table
    idx = boxes.trunc().long()
    x1, x2 = idx[:, 0].clamp(0, W), idx[:, 2].clamp(0, W)
    y1, y2 = idx[:, 1].clamp(0, H), idx[:, 3].clamp(0, H)
    inside = table[y2, x2] - table[y1, x2] - table[y2, x1] + table[y1, x1]
    inside = torch.where((x2 > x1) & (y2 > y1), inside, torch.zeros_like(inside))
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=0)
    return torch.where(area > 0, inside / area.clamp(min=1e-12) ** alpha, torch.zeros_like(inside))


__all__ = ['CrossAttentionRecorder', 'patch_grid', 'gradcam_from_attention', 'heatmap_to_image', 'score_proposals']
