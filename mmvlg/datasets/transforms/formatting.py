import numpy as np
from mmdet.datasets.transforms import PackDetInputs

from mmvlg.registry import TRANSFORMS

DEFAULT_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                     'flip_direction', 'text', 'split', 'original_id', 'ori_gt_bboxes', 'tokens_positive_eval')


def positive_strides(results: dict) -> dict:
    """Copy ``results['img']`` when it has a negative stride. A flip returns a view with one; numpy calls the
    view of a 1-pixel-wide image C-contiguous all the same, so mmdet's packing hands it to ``torch.from_numpy``
    as it is, which refuses it (``At least one stride in the given numpy array is negative``)."""
    img = results.get('img')
    if isinstance(img, np.ndarray) and any(s < 0 for s in img.strides):
        results['img'] = img.copy()  # (np.ascontiguousarray returns the view itself)
    return results


@TRANSFORMS.register_module()
class PackGroundingInputs(PackDetInputs):
    """Pack an image-text sample into ``inputs`` and a :class:`mmdet.structures.DetDataSample`.

    Besides :class:`~mmdet.datasets.transforms.PackDetInputs`' work, the metainfo carries ``text`` (after
    augmentation, e.g. left/right swapped by a flip) and ``tokens_positive``: for each kept ground-truth
    box, its character spans of ``text`` (aligned with ``gt_instances``).
    """

    def __init__(self, meta_keys=DEFAULT_META_KEYS) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        packed = super().transform(positive_strides(results))
        spans = results.get('gt_tokens_positive')
        if spans is not None:
            ignore = results.get('gt_ignore_flags')
            if ignore is not None:
                spans = [s for s, ig in zip(spans, ignore) if not ig]
            packed['data_samples'].set_metainfo(dict(tokens_positive=spans))
        return packed
