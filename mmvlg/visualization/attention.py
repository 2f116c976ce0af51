"""Heat-map overlays of attention maps (e.g. the encoder's text-to-image attention, SiRi's Fig. 7), and FIBER's
fused text-to-image attention recorded with forward hooks."""
from typing import List, Optional, Sequence

import cv2
import numpy as np

RED_BGR = (0, 0, 255)


def attention_heatmap(attention: np.ndarray, size: Optional[Sequence[int]] = None,
                      colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Colour an attention map, min-max normalized to [0, 1].

    Args:
        attention (np.ndarray): (h, w) map.
        size (tuple[int, int], optional): (H, W) to resize the map to (bilinear) before colouring.
        colormap (int): An OpenCV colour map. Defaults to ``cv2.COLORMAP_JET``.

    Returns:
        np.ndarray: (H, W, 3) BGR ``uint8`` heat map.
    """
    att = np.asarray(attention, dtype=np.float32)
    if att.ndim != 2:
        raise ValueError(f'attention must be a 2-D map, got shape {att.shape}')
    if size is not None and tuple(att.shape) != tuple(size):
        att = cv2.resize(att, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
    att = np.nan_to_num(att)
    low, high = float(att.min()), float(att.max())
    norm = (att - low) / (high - low) if high > low else np.zeros_like(att)
    return cv2.applyColorMap(np.round(norm * 255).astype(np.uint8), colormap)


def _wrap(text: str, width: int, scale: float, thickness: int) -> List[str]:
    lines, line = [], ''
    for word in text.split():
        candidate = f'{line} {word}'.strip()
        if line and cv2.getTextSize(candidate, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + [line] if line else lines


def _draw_box(image: np.ndarray, box: Sequence[float], thickness: int, label: Optional[str] = None,
              scale: float = 0.4) -> None:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(image, (x1, y1), (x2, y2), RED_BGR, thickness)
    if label:
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y = max(y1, th + base)
        cv2.rectangle(image, (x1, y - th - base), (x1 + tw, y), (0, 0, 0), -1)
        cv2.putText(image, label, (x1, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, RED_BGR, 1, cv2.LINE_AA)


def draw_attention(image: np.ndarray, attention: np.ndarray, bboxes: Optional[np.ndarray] = None,
                   scores: Optional[Sequence[float]] = None, text: Optional[str] = None, alpha: float = 0.5,
                   min_size: int = 0, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """The image and its attention heat map side by side, with the box(es) on both and the text as title.

    Args:
        image (np.ndarray): (H, W, 3) BGR ``uint8`` image (or (H, W) grey).
        attention (np.ndarray): (h, w) attention map; resized to (H, W) if needed. It should cover only
            the image (no padding region).
        bboxes (np.ndarray, optional): (k, 4) or (4,) x1, y1, x2, y2 boxes in image pixels, drawn in red.
        scores (list[float], optional): Scores printed on the boxes.
        text (str, optional): Title (the expression), wrapped to the width of the output.
        alpha (float): Weight of the heat map in the overlay. Defaults to 0.5.
        min_size (int): Enlarge images whose longer side is smaller than this (for readable titles on
            small images). Defaults to 0 (never).
        colormap (int): OpenCV colour map. Defaults to ``cv2.COLORMAP_JET``.

    Returns:
        np.ndarray: (T + H', 2 W' + gap, 3) BGR ``uint8`` drawing: the original on the left, the overlay on
        the right, a title band of height T on top (H', W' the possibly enlarged size).
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img.clip(0, 255).astype(np.uint8))
    h, w = img.shape[:2]
    factor = min_size / max(h, w) if min_size and max(h, w) < min_size else 1.0
    if factor != 1.0:
        img = cv2.resize(img, (int(round(w * factor)), int(round(h * factor))), interpolation=cv2.INTER_LINEAR)
        h, w = img.shape[:2]
    heat = attention_heatmap(attention, size=(h, w), colormap=colormap)
    overlay = cv2.addWeighted(img, 1.0 - alpha, heat, alpha, 0.0)
    left = img.copy()
    thickness = max(1, int(round(max(h, w) / 200)))
    label_scale = max(0.4, max(h, w) / 700)
    if bboxes is not None:
        boxes = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4) * factor
        for i, box in enumerate(boxes):
            label = f'{scores[i]:.3g}' if scores is not None and i < len(scores) else None
            for panel in (left, overlay):
                _draw_box(panel, box, thickness, label, label_scale)
    gap = max(2, w // 64)
    canvas = np.concatenate([left, np.full((h, gap, 3), 255, np.uint8), overlay], axis=1)
    if not text:
        return canvas
    scale = max(0.4, canvas.shape[1] / 900)
    font_thickness = max(1, int(round(scale)))
    lines = _wrap(text, canvas.shape[1] - 8, scale, font_thickness)
    line_h = cv2.getTextSize('Ag', cv2.FONT_HERSHEY_SIMPLEX, scale, font_thickness)[0][1] + int(10 * scale) + 4
    band = np.zeros((line_h * len(lines) + 6, canvas.shape[1], 3), np.uint8)
    for k, line in enumerate(lines):
        cv2.putText(band, line, (4, line_h * (k + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    font_thickness, cv2.LINE_AA)
    return np.concatenate([band, canvas], axis=0)


class FusionAttentionRecorder:
    """Record the text-to-image attention weights of a :class:`~mmvlg.models.backbones.FIBERBackbone`'s fused
    text layers while the model runs, with forward hooks that return nothing (the outputs are unchanged).

    FIBER has no encoder attention matrix to read: the text-to-image attention of fused text layer ``j`` is
    the :class:`~mmvlg.models.layers.GatedCrossAttention` ``backbone.t2i_attns[j]`` (text queries, keys from the
    input of Swin block ``B-N+j``), computed with ``scaled_dot_product_attention``. Its hook recomputes the
    softmax weights from the same query/key projections and padding mask; hooks on the Swin's patch embedding
    and patch mergings give the (h, w) of the image tokens at each layer. The weights are those of the ungated
    attention (the gate ``alpha`` scales the attention's output, not where it looks).

    Example:
        >>> with FusionAttentionRecorder(model.backbone) as rec:
        ...     model.extract_feat(inputs, data_samples)
        >>> weights, hw = rec.records[0]  # (bs, heads, L, h*w), (h, w) of fused layer 0

    Args:
        backbone (FIBERBackbone): The fusion backbone.
    """

    def __init__(self, backbone) -> None:
        if not hasattr(backbone, 't2i_attns') or not hasattr(backbone, 'visual'):
            raise TypeError(f'FusionAttentionRecorder: expected a FIBERBackbone, got {type(backbone).__name__}')
        self.backbone = backbone
        self.records: list = []
        self._hw = None
        self._handles: list = []

    def _set_hw(self, module, args, output) -> None:
        self._hw = tuple(int(v) for v in output[1])

    def _record(self, module, args, kwargs, output) -> None:
        import torch
        names = ('x', 'context', 'context_padding_mask')
        given = dict(zip(names, args), **kwargs)
        x, context, pad = given['x'], given['context'], given.get('context_padding_mask')
        with torch.no_grad():
            q = module._heads(module.q_proj(module.query_norm(x)))
            k = module._heads(module.kv_proj(context).split(module.embed_dims, dim=-1)[0])
            logits = (q.float() @ k.float().transpose(-1, -2)) / float(q.shape[-1]) ** 0.5
            if pad is not None:
                keep = ~pad.bool()
                keep = keep | ~keep.any(-1, keepdim=True)  # as GatedCrossAttention: never a fully masked row
                logits = logits.masked_fill(~keep[:, None, None, :], float('-inf'))
            self.records.append((logits.softmax(-1), self._hw))

    def __enter__(self) -> 'FusionAttentionRecorder':
        visual = self.backbone.visual
        self.records, self._hw = [], None
        self._handles = [visual.patch_embed.register_forward_hook(self._set_hw)]
        self._handles += [stage.downsample.register_forward_hook(self._set_hw) for stage in visual.stages
                          if stage.downsample is not None]
        self._handles += [m.register_forward_hook(self._record, with_kwargs=True) for m in self.backbone.t2i_attns]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def fusion_text_to_image_attention(model, batch_inputs, batch_data_samples, layers: Optional[Sequence[int]] = None):
    """FIBER's text-to-image attention of each sample's expression over its image (the counterpart of MDETR's
    ``cross_modal_attention``).

    Runs ``model.extract_feat`` (fusion on) under a :class:`FusionAttentionRecorder`; per chosen fused layer,
    the weights are averaged over heads and over the expression's tokens (those with a non-empty character
    span, i.e. not ``[CLS]``/``[SEP]``/padding), resized bilinearly to the finest layer's token grid and summed.

    Args:
        model: A grounding detector with a ``FIBERBackbone`` as ``backbone`` and ``extract_feat(inputs,
            data_samples)`` (:class:`~mmvlg.models.detectors.FIBER`).
        batch_inputs (Tensor): (bs, 3, H, W) preprocessed images.
        batch_data_samples (list): Their data samples (``text``).
        layers (list[int], optional): Fused layers to sum, 0 .. ``num_fusion_layers - 1``. Defaults to all.

    Returns:
        Tensor: (bs, h, w) attention on the token grid of the first (finest) chosen layer, over the padded input.
    """
    import torch
    import torch.nn.functional as F
    backbone = model.backbone
    n = len(backbone.t2i_attns)
    if n == 0 or getattr(model, 'fusion', True) is False:
        raise ValueError(f'{type(model).__name__}: the backbone runs no fused layers (num_fusion_layers='
                         f'{getattr(backbone, "num_fusion_layers", 0)}, fusion={getattr(model, "fusion", True)}): '
                         'there is no text-to-image attention to draw')
    chosen = list(range(n)) if layers is None else [int(i) for i in layers]
    bad = [i for i in chosen if not 0 <= i < n]
    if bad or not chosen:
        raise ValueError(f'layers {list(layers)} out of range: {type(model).__name__} has {n} fused layers '
                         f'(0 .. {n - 1})')
    with torch.no_grad(), FusionAttentionRecorder(backbone) as recorder:
        model.extract_feat(batch_inputs, batch_data_samples)
    tokens = backbone.language_model.tokenize([ds.text for ds in batch_data_samples], device=batch_inputs.device)
    offsets = tokens['offsets']
    words = (offsets[..., 1] > offsets[..., 0]) & tokens['attention_mask'].bool()
    words = torch.where(words.any(1, keepdim=True), words, tokens['attention_mask'].bool()).float()
    maps, size = [], None
    for j in chosen:
        weights, hw = recorder.records[j]
        per_token = weights.mean(1)  # (bs, L, N)
        att = (per_token * words[..., None]).sum(1) / words.sum(1, keepdim=True)
        att = att.view(att.shape[0], 1, *hw)
        size = size or hw
        maps.append(att if hw == size else F.interpolate(att, size=size, mode='bilinear', align_corners=False))
    return torch.stack(maps).sum(0)[:, 0]
