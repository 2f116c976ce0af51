"""X-VLM's region sampling and the packing of region-text and image-text samples (interface 2 of X-VLM).

A region-text pipeline (:class:`~mmvlg.datasets.RegionTextDataset`)::

    [dict(type='LoadImageFromFile'),
     dict(type='RegionTextSampler', max_regions=5),                # crop around one element, flip, keep regions
     dict(type='mmdet.Resize', scale=(224, 224), keep_ratio=False),  # updates gt_bboxes and scale_factor
     dict(type='PackRegionTextInputs')]

and an image-text pipeline (:class:`~mmvlg.datasets.CaptionDataset`) to mix with it in a ``ConcatDataset``::

    [dict(type='LoadImageFromFile'), dict(type='mmdet.Resize', scale=(224, 224), keep_ratio=False),
     dict(type='PackRegionTextInputs')]
"""
import math
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import PackDetInputs
from mmdet.structures.bbox import HorizontalBoxes

from mmvlg.registry import TRANSFORMS

from ..region_text import check_region_box
from ..validation import sample_where
from .formatting import positive_strides
from .image_text import IMAGE_TEXT_META_KEYS
from .text_utils import LEFT_RIGHT, replace_words_keep_spans

__all__ = ['REGION_TEXT_META_KEYS', 'RegionTextSampler', 'PackRegionTextInputs']

REGION_TEXT_META_KEYS = IMAGE_TEXT_META_KEYS + ('region_texts', 'region_is_image', 'data_kind')


def _choice(values: Sequence[str]) -> str:
    """One of ``values``, drawn with numpy's global generator (seeded per sample by the data set)."""
    return values[int(np.random.randint(len(values)))] if len(values) > 1 else values[0]


@TRANSFORMS.register_module()
class RegionTextSampler(BaseTransform):
    """X-VLM's region sampling: crop around one element, flip, and keep the regions that stay in the crop.

    1. One image caption is drawn from ``captions`` (the sample's ``text``; ``''`` when there is none).
    2. With ``crop``, one element is chosen uniformly and a random crop that contains its box is drawn: the
       left and top sides uniformly in [0, box's x1] and [0, box's y1] (integer pixels), the right and bottom
       ones in [box's x2, W] and [box's y2, H].
    3. The regions: the whole-image caption first, as a region whose box is the whole (cropped) image with
       ``region_is_image=True``; then the chosen element; then the other elements in random order whose box lies
       more than ``min_inside`` of its area inside the crop, clipped to it; up to ``max_regions`` regions in all
       (the whole-image caption counts, as in X-VLM). A region's text is one of its captions with one of its
       attributes (if any) in front.
    4. With probability ``flip_prob``, a horizontal flip of the crop that mirrors the boxes and swaps ``swap_words``
       (left <-> right) in the caption and every region text (with ``careful_flip``, samples whose texts say left
       or right are not flipped instead, the authors' ``careful_hflip``).

    The random draws use numpy's global generator, which mmvlg's data sets seed per sample
    (:class:`~mmvlg.datasets.seeding.SampleSeedingMixin`).

    Required keys: ``img``, ``regions`` (list of dict(``bbox`` [x1, y1, x2, y2] pixels, ``captions``,
    ``attributes``)), ``captions`` (optional). Added / modified keys: ``img``, ``img_shape``, ``text``,
    ``gt_bboxes`` (:class:`HorizontalBoxes` (n, 4) in pixels of the crop), ``gt_bboxes_labels`` (n,) zeros,
    ``region_texts`` (list[str], n), ``region_is_image`` (list[bool], n), ``flip``, ``flip_direction``,
    ``region_crop`` ([x1, y1, x2, y2] of the crop in the original image).

    Args:
        max_regions (int): Most regions per sample (X-VLM: 5).
        min_inside (float): An element is kept when more than this fraction of its box area is inside the crop
            (X-VLM: 0.5).
        crop (bool): Crop around a chosen element. Defaults to True.
        flip_prob (float): Probability of the horizontal flip. Defaults to 0.5.
        careful_flip (bool): Do not flip samples whose texts contain a word of ``swap_words`` (instead of
            swapping them). Defaults to False.
        swap_words (dict, optional): Substring swaps on a flip. Defaults to ``{'left': 'right', 'right': 'left'}``.
        box_tolerance (float): Pixels a box may reach past the loaded image before it is an error (as the data
            set's ``box_tolerance``).
    """

    def __init__(self, max_regions: int = 5, min_inside: float = 0.5, crop: bool = True, flip_prob: float = 0.5,
                 careful_flip: bool = False, swap_words: Optional[dict] = None, box_tolerance: float = 1.0) -> None:
        if not isinstance(max_regions, int) or max_regions < 1:
            raise ValueError(f'RegionTextSampler: max_regions must be an int >= 1, got {max_regions!r}')
        if not 0 <= min_inside < 1:
            raise ValueError(f'RegionTextSampler: min_inside must be in [0, 1), got {min_inside!r}')
        if not 0 <= flip_prob <= 1:
            raise ValueError(f'RegionTextSampler: flip_prob must be in [0, 1], got {flip_prob!r}')
        self.max_regions = max_regions
        self.min_inside = float(min_inside)
        self.crop = crop
        self.flip_prob = float(flip_prob)
        self.careful_flip = careful_flip
        self.swap_words = dict(LEFT_RIGHT) if swap_words is None else dict(swap_words)
        self.box_tolerance = float(box_tolerance)

    def _region_text(self, region: dict) -> str:
        caption = _choice(region['captions'])
        attributes = region.get('attributes') or []
        return f'{_choice(attributes)} {caption}' if attributes else caption

    def _swap(self, text: str) -> str:
        return replace_words_keep_spans(text, [], self.swap_words)[0] if text else text

    def _mentions_swap_words(self, texts: List[str]) -> bool:
        return any(word in t for t in texts for word in self.swap_words)

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        where = sample_where(results)
        regions = results.get('regions') or []
        # (load-time check against the decoded image: boxes the data set could not check without the image size)
        boxes = np.array([check_region_box([r['bbox'][0], r['bbox'][1], r['bbox'][2] - r['bbox'][0],
                                            r['bbox'][3] - r['bbox'][1]], f'{where}, elem {k}', (h, w),
                                           self.box_tolerance)
                          for k, r in enumerate(regions)], dtype=np.float64).reshape(-1, 4)
        captions = results.get('captions') or []
        caption = _choice(captions) if captions else ''

        x0, y0, x1, y1 = 0, 0, w, h
        chosen = None
        if self.crop and len(regions):
            chosen = int(np.random.randint(len(regions)))
            bx1, by1, bx2, by2 = boxes[chosen]
            x0 = int(np.random.randint(0, math.floor(bx1) + 1))
            y0 = int(np.random.randint(0, math.floor(by1) + 1))
            x1 = int(np.random.randint(min(math.ceil(bx2), w), w + 1))
            y1 = int(np.random.randint(min(math.ceil(by2), h), h + 1))
        cw, ch = x1 - x0, y1 - y0

        texts, kept_boxes, is_image = [], [], []
        if caption:
            texts.append(caption)
            kept_boxes.append([0., 0., float(cw), float(ch)])
            is_image.append(True)
        others = [int(i) for i in np.random.permutation(len(regions)) if i != chosen]
        order = ([chosen] if chosen is not None else []) + others
        for k in order:
            if len(texts) >= self.max_regions:
                break
            bx1, by1, bx2, by2 = boxes[k]
            ix1, iy1, ix2, iy2 = max(bx1, x0), max(by1, y0), min(bx2, x1), min(by2, y1)
            if ix2 <= ix1 or iy2 <= iy1:
                continue
            if (ix2 - ix1) * (iy2 - iy1) / ((bx2 - bx1) * (by2 - by1)) <= self.min_inside:
                continue
            texts.append(self._region_text(regions[k]))
            kept_boxes.append([ix1 - x0, iy1 - y0, ix2 - x0, iy2 - y0])
            is_image.append(False)

        img = img[y0:y1, x0:x1]
        arr = np.array(kept_boxes, dtype=np.float32).reshape(-1, 4)
        flip = bool(np.random.rand() < self.flip_prob)
        if flip and self.careful_flip and self._mentions_swap_words(texts + [caption]):
            flip = False
        if flip:
            img = img[:, ::-1]
            arr = np.stack([cw - arr[:, 2], arr[:, 1], cw - arr[:, 0], arr[:, 3]], axis=1).reshape(-1, 4)
            caption = self._swap(caption)
            texts = [self._swap(t) for t in texts]

        results['img'] = np.ascontiguousarray(img)
        results['img_shape'] = results['img'].shape[:2]
        results['text'] = caption
        results['gt_bboxes'] = HorizontalBoxes(arr)
        results['gt_bboxes_labels'] = np.zeros(len(arr), dtype=np.int64)
        results['region_texts'] = texts
        results['region_is_image'] = is_image
        results['flip'] = flip
        results['flip_direction'] = 'horizontal' if flip else None
        results['region_crop'] = [x0, y0, x1, y1]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(max_regions={self.max_regions}, min_inside={self.min_inside}, '
                f'crop={self.crop}, flip_prob={self.flip_prob}, careful_flip={self.careful_flip})')


@TRANSFORMS.register_module()
class PackRegionTextInputs(PackDetInputs):
    """Pack a region-text sample (after :class:`RegionTextSampler` and a resize) or a plain image-text sample
    into ``inputs`` (3, H, W) uint8 BGR and a :class:`mmdet.structures.DetDataSample` (X-VLM's interface 2).

    Data sample:

    * metainfo ``text`` (str: the image-level caption, ``''`` when the image has none), ``img_id``,
      ``region_texts`` (list[str], one per region), ``region_is_image`` (list[bool]: True for the whole-image
      caption given as a region whose box is the whole image), ``data_kind`` (``'region_text'`` for samples of a
      region-text data set, ``'image_text'`` for plain pairs), ``img_shape``, ``ori_shape``, ``scale_factor``,
      ``flip``, ``flip_direction``, ``text_id``, ``split`` (those present);
    * ``gt_instances.bboxes``: float32 tensor (n_regions, 4), x1, y1, x2, y2 in pixels of the resized image
      (n_regions = 0 for plain image-text pairs), ``gt_instances.labels`` (n_regions,) zeros.

    Raises:
        KeyError: A plain image-text sample without text, or a region sample whose region texts, flags and boxes
            disagree in number (naming the sample).
    """

    def __init__(self, meta_keys: Sequence[str] = REGION_TEXT_META_KEYS) -> None:
        super().__init__(meta_keys=tuple(meta_keys))

    def transform(self, results: dict) -> dict:
        is_region = 'regions' in results or 'region_texts' in results
        results.setdefault('data_kind', 'region_text' if is_region else 'image_text')
        text = results.get('text', '')
        if not isinstance(text, str):
            raise KeyError(f'PackRegionTextInputs: {sample_where(results)} has a non-string text {text!r}')
        if not is_region and not text.strip():
            raise KeyError(f'PackRegionTextInputs: {sample_where(results)} has no text and no regions')
        results['text'] = text
        results.setdefault('region_texts', [])
        results.setdefault('region_is_image', [])
        if results.get('gt_bboxes') is None:
            results['gt_bboxes'] = HorizontalBoxes(np.zeros((0, 4), dtype=np.float32))
            results['gt_bboxes_labels'] = np.zeros(0, dtype=np.int64)
        n = len(results['gt_bboxes'])
        if not len(results['region_texts']) == len(results['region_is_image']) == n:
            raise KeyError(f'PackRegionTextInputs: {sample_where(results)} has {len(results["region_texts"])} '
                           f'region texts, {len(results["region_is_image"])} region_is_image flags and {n} boxes; '
                           'put RegionTextSampler before the packing and no box filter between them')
        results.pop('gt_ignore_flags', None)  # every region is a target
        packed = super().transform(positive_strides(results))
        gt = packed['data_samples'].gt_instances
        boxes = gt.bboxes
        gt.bboxes = (boxes.tensor if hasattr(boxes, 'tensor') else torch.as_tensor(boxes)).float().reshape(-1, 4)
        return packed
