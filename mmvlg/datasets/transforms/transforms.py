from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import RandomFlip

from mmvlg.registry import TRANSFORMS

from .text_utils import LEFT_RIGHT, replace_words_keep_spans


@TRANSFORMS.register_module()
class GroundingRandomFlip(RandomFlip):
    """Horizontal flip that also swaps "left" and "right" in the expression (as MDETR does), moving the
    ``gt_tokens_positive`` spans with the words.

    Only horizontal flips are allowed: a vertical flip would need "top"/"bottom" swaps as well.

    Args:
        prob (float): Flip probability.
        swap_words (dict, optional): Substring swaps applied to ``text`` on a flip. Defaults to
            ``{'left': 'right', 'right': 'left'}``.
    """

    def __init__(self, prob: float = 0.5, swap_words: Optional[dict] = None, **kwargs) -> None:
        if kwargs.get('direction', 'horizontal') != 'horizontal':
            raise ValueError('GroundingRandomFlip supports direction="horizontal" only')
        super().__init__(prob=prob, direction='horizontal', **kwargs)
        self.swap_words = dict(LEFT_RIGHT) if swap_words is None else swap_words

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        spans = results.get('gt_tokens_positive', [])
        results['text'], new_spans = replace_words_keep_spans(results['text'], spans, self.swap_words)
        if 'gt_tokens_positive' in results:
            results['gt_tokens_positive'] = new_spans


@TRANSFORMS.register_module()
class RandomCropKeepBoxes(BaseTransform):
    """Random crop whose window always contains every ground-truth box (the referred object must stay
    visible, as MDETR's ``RandomSizeCrop(respect_boxes=True)``).

    The crop side lengths are drawn uniformly in ``[min_ratio, 1]`` times the image sides, then enlarged
    where needed to hold the union of the boxes, and the window is placed uniformly among the positions
    that contain it.

    Required keys: ``img``, ``gt_bboxes``. Modified keys: ``img``, ``img_shape``, ``gt_bboxes``.

    Args:
        min_ratio (float): Smallest crop side as a fraction of the image side. Defaults to 0.6.
        prob (float): Probability of cropping. Defaults to 0.5.
    """

    def __init__(self, min_ratio: float = 0.6, prob: float = 0.5) -> None:
        if not 0 < min_ratio <= 1:
            raise ValueError(f'min_ratio must be in (0, 1], got {min_ratio}')
        self.min_ratio = min_ratio
        self.prob = prob

    def _window(self, h: int, w: int, boxes: np.ndarray, rng) -> Tuple[int, int, int, int]:
        """Draw a crop window (x0, y0, width, height); ``rng`` is the legacy ``np.random`` API (the module or a
        ``RandomState``: ``uniform`` and ``randint``), so that MMEngine's seeding applies."""
        ch = int(rng.uniform(self.min_ratio, 1) * h)
        cw = int(rng.uniform(self.min_ratio, 1) * w)
        if len(boxes):
            ux1, uy1 = np.floor(boxes[:, :2].min(0)).astype(int)
            ux2, uy2 = np.ceil(boxes[:, 2:].max(0)).astype(int)
            ux1, uy1 = max(ux1, 0), max(uy1, 0)
            ux2, uy2 = min(ux2, w), min(uy2, h)
            cw, ch = min(max(cw, ux2 - ux1), w), min(max(ch, uy2 - uy1), h)
            x0 = int(rng.randint(max(0, ux2 - cw), min(ux1, w - cw) + 1))
            y0 = int(rng.randint(max(0, uy2 - ch), min(uy1, h - ch) + 1))
        else:
            x0 = int(rng.randint(0, w - cw + 1))
            y0 = int(rng.randint(0, h - ch + 1))
        return x0, y0, cw, ch

    def transform(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        img = results['img']
        h, w = img.shape[:2]
        boxes = results['gt_bboxes']
        arr = boxes.numpy() if hasattr(boxes, 'numpy') else np.asarray(boxes)
        x0, y0, cw, ch = self._window(h, w, arr.reshape(-1, 4), np.random)
        results['img'] = img[y0:y0 + ch, x0:x0 + cw]
        results['img_shape'] = results['img'].shape[:2]
        boxes.translate_([-x0, -y0])
        boxes.clip_([ch, cw])
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(min_ratio={self.min_ratio}, prob={self.prob})'
