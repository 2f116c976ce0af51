from mmdet.datasets.transforms import PackDetInputs

from mmvlg.registry import TRANSFORMS

DEFAULT_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                     'flip_direction', 'text', 'split', 'original_id', 'ori_gt_bboxes', 'tokens_positive_eval')


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
        packed = super().transform(results)
        spans = results.get('gt_tokens_positive')
        if spans is not None:
            ignore = results.get('gt_ignore_flags')
            if ignore is not None:
                spans = [s for s, ig in zip(spans, ignore) if not ig]
            packed['data_samples'].set_metainfo(dict(tokens_positive=spans))
        return packed
