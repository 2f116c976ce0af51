import numpy as np
from mmdet.datasets.transforms import LoadAnnotations

from mmvlg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadGroundingAnnotations(LoadAnnotations):
    """Load boxes like :class:`mmdet.datasets.transforms.LoadAnnotations` plus the grounding targets.

    Added keys: ``gt_tokens_positive`` (for each box, its list of [start, end) character spans of
    ``text``) and ``ori_gt_bboxes`` (the boxes in original image pixels, x1, y1, x2, y2, kept for the
    metrics whatever the later transforms do). ``text`` comes from the data info unchanged.
    """

    def __init__(self, with_bbox: bool = True, **kwargs) -> None:
        super().__init__(with_bbox=with_bbox, **kwargs)

    def transform(self, results: dict) -> dict:
        if 'text' not in results or not isinstance(results['text'], str):
            raise KeyError(f'LoadGroundingAnnotations: sample {results.get("img_path")} has no "text"')
        results = super().transform(results)
        instances = results.get('instances', [])
        results['gt_tokens_positive'] = [inst.get('tokens_positive', []) for inst in instances]
        results['ori_gt_bboxes'] = np.array([inst['bbox'] for inst in instances],
                                            dtype=np.float32).reshape(-1, 4)
        return results
