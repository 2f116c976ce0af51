import os.path as osp
from collections import OrderedDict, defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.evaluator import BaseMetric
from mmengine.fileio import dump
from mmengine.logging import MMLogger

from mmvlg.registry import METRICS


@METRICS.register_module()
class RefExpMetric(BaseMetric):
    """Referring-expression comprehension precision: Prec@k is the percentage of expressions for which one
    of the k best-scored boxes has IoU >= ``iou_thr`` with the referred box (top-1 is the usual accuracy).
    Values are in percent (0-100), like every mmvlg metric and the papers' tables.

    Results are reported per split, named by each sample's ``split`` metainfo (the dataset's ``split``
    argument or annotation-file name), so one evaluator handles any set of test files, e.g. a
    ``ConcatDataset`` of val/testA/testB. Keys: ``{prefix}/{split}_Prec@{k}`` and, over all samples,
    ``{prefix}/Prec@{k}``.

    Args:
        topk (Sequence[int]): The k of Prec@k. Defaults to (1, 5, 10).
        iou_thr (float): IoU threshold. Defaults to 0.5.
        outfile_prefix (str, optional): If given, per-expression predictions and the summary are written
            to ``{outfile_prefix}.refexp.json``.
    """
    default_prefix: Optional[str] = 'refexp'

    def __init__(self, topk: Sequence[int] = (1, 5, 10), iou_thr: float = 0.5,
                 outfile_prefix: Optional[str] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not topk or min(topk) < 1:
            raise ValueError(f'topk must hold positive integers, got {topk}')
        self.topk = tuple(sorted(set(int(k) for k in topk)))
        self.iou_thr = iou_thr
        self.outfile_prefix = outfile_prefix

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        kmax = self.topk[-1]
        for ds in data_samples:
            if 'ori_gt_bboxes' not in ds:
                raise KeyError(f'RefExpMetric: sample {ds.get("img_path")} has no "ori_gt_bboxes"; the test '
                               'pipeline needs LoadGroundingAnnotations and PackGroundingInputs')
            pred = ds['pred_instances']
            boxes = pred['bboxes'][:kmax].detach().float().cpu()
            gt = torch.as_tensor(np.asarray(ds['ori_gt_bboxes']), dtype=torch.float32).view(-1, 4)
            if len(gt) == 0 or len(boxes) == 0:
                best = torch.zeros(len(boxes))
            else:
                best = bbox_overlaps(boxes, gt).max(dim=1).values
            hits = {k: bool((best[:k] >= self.iou_thr).any()) for k in self.topk}
            self.results.append(dict(
                img_id=ds.get('img_id'), split=ds.get('split', 'all'), text=ds.get('text'), hits=hits,
                iou=float(best[0]) if len(best) else 0.0,
                pred_bbox=boxes[0].tolist() if len(boxes) else None,
                score=float(pred['scores'][0]) if len(boxes) else None,
                gt_bboxes=gt.tolist()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        logger = MMLogger.get_current_instance()
        by_split: Dict[str, List[dict]] = defaultdict(list)
        for r in results:
            by_split[r['split']].append(r)
        metrics = OrderedDict()
        for k in self.topk:
            metrics[f'Prec@{k}'] = 100.0 * float(np.mean([r['hits'][k] for r in results])) if results else 0.0
        for split, rs in sorted(by_split.items()):
            for k in self.topk:
                metrics[f'{split}_Prec@{k}'] = 100.0 * float(np.mean([r['hits'][k] for r in rs]))
            logger.info(f'{split}: ' + ', '.join(f'Prec@{k}={metrics[f"{split}_Prec@{k}"]:.2f}'
                                                 for k in self.topk) + f' ({len(rs)} expressions)')
        if self.outfile_prefix is not None:
            out = f'{self.outfile_prefix}.refexp.json'
            dump(dict(metrics=dict(metrics), iou_thr=self.iou_thr, predictions=results), out)
            logger.info(f'RefExpMetric: predictions written to {osp.abspath(out)}')
        return metrics
