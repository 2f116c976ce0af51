"""Phrase-grounding recall on Flickr30k Entities, with MDETR's protocols."""
import os.path as osp
from collections import OrderedDict, defaultdict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.evaluator import BaseMetric
from mmengine.fileio import dump
from mmengine.logging import MMLogger

from mmvlg.registry import METRICS


def _get(obj: Any, key: str) -> Any:
    """``obj[key]`` for a dict (a data sample after ``to_dict()``) or ``obj.get(key)`` for a data element."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return obj.get(key, None)


def union_box(boxes: torch.Tensor) -> torch.Tensor:
    """The smallest box that encloses all of ``boxes`` (n, 4), as a (1, 4) tensor (x1, y1, x2, y2)."""
    return torch.cat([boxes[:, :2].min(0).values, boxes[:, 2:].max(0).values]).view(1, 4)


@METRICS.register_module()
class FlickrRecallMetric(BaseMetric):
    """Recall@k of phrase grounding on Flickr30k Entities, as in `MDETR <https://arxiv.org/abs/2104.12763>`_.

    Every phrase with at least one ground-truth box is one trial: it is recalled at k if one of its k
    best-scored predicted boxes has IoU >= ``iou_thr`` with

    * any of the phrase's ground-truth boxes (``merge_boxes=False``, MDETR's *any-box* protocol, used with
      the separateGT files), or
    * the union box of all the phrase's ground-truth boxes (``merge_boxes=True``, the *merged-box* protocol
      of Plummer et al., used with the mergedGT files).

    Input per data sample (a dict, as :class:`mmengine.evaluator.Evaluator` passes it):

    * ``phrases``: the metainfo of :class:`~mmvlg.datasets.Flickr30kEntitiesDataset` (list of dicts with
      ``gt_bboxes``, x1, y1, x2, y2 in original image pixels); add ``'phrases'`` to
      ``PackGroundingInputs``' ``meta_keys``;
    * ``pred_instances['phrase_bboxes']``: one (k_i, 4) tensor per phrase, in the order of ``phrases``, its
      boxes sorted by decreasing score, in original image pixels. (Models set it with
      ``pred_instances.set_metainfo(dict(phrase_bboxes=[...]))``: it has one entry per phrase, not per box.)

    Results are reported over all phrases and per split (the ``split`` metainfo): keys
    ``{prefix}/Recall@{k}`` and ``{prefix}/{split}_Recall@{k}``, in percent (0-100) like every mmvlg metric.

    Args:
        topk (Sequence[int]): The k of Recall@k. Defaults to (1, 5, 10).
        iou_thr (float): IoU threshold. Defaults to 0.5.
        merge_boxes (bool): Compare against the union box of each phrase (mergedGT protocol). Defaults to
            False (any-box, separateGT protocol).
        outfile_prefix (str, optional): If given, per-phrase results and the summary are written to
            ``{outfile_prefix}.flickr.json``.
        collect_device (str): Device for collecting results across ranks. Defaults to 'cpu'.
        prefix (str, optional): Metric key prefix. Defaults to ``'flickr'``.
    """
    default_prefix: Optional[str] = 'flickr'

    def __init__(self, topk: Sequence[int] = (1, 5, 10), iou_thr: float = 0.5, merge_boxes: bool = False,
                 outfile_prefix: Optional[str] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not topk or min(topk) < 1:
            raise ValueError(f'topk must hold positive integers, got {topk}')
        self.topk = tuple(sorted(set(int(k) for k in topk)))
        self.iou_thr = iou_thr
        self.merge_boxes = merge_boxes
        self.outfile_prefix = outfile_prefix

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Score every phrase of every sample of the batch and keep its hits in ``self.results``."""
        kmax = self.topk[-1]
        for ds in data_samples:
            name = _get(ds, 'img_path') or _get(ds, 'img_id')
            phrases = _get(ds, 'phrases')
            if phrases is None:
                raise KeyError(f'FlickrRecallMetric: sample {name} has no "phrases" metainfo; use '
                               'Flickr30kEntitiesDataset and add "phrases" to PackGroundingInputs\' meta_keys')
            phrase_bboxes = _get(_get(ds, 'pred_instances'), 'phrase_bboxes')
            if phrase_bboxes is None:
                raise KeyError(f'FlickrRecallMetric: sample {name} has no pred_instances["phrase_bboxes"] '
                               '(one (k, 4) tensor of boxes per phrase)')
            if len(phrase_bboxes) != len(phrases):
                raise ValueError(f'FlickrRecallMetric: sample {name} has {len(phrases)} phrases but '
                                 f'{len(phrase_bboxes)} entries in pred_instances["phrase_bboxes"]')
            trials = []
            for p, (phrase, boxes) in enumerate(zip(phrases, phrase_bboxes)):
                gt = torch.as_tensor(np.asarray(phrase['gt_bboxes'], dtype=np.float32)).view(-1, 4)
                if len(gt) == 0:
                    continue  # not a trial: MDETR evaluates the phrases that have a box only
                if self.merge_boxes:
                    gt = union_box(gt)
                boxes = torch.as_tensor(boxes).detach().float().cpu().view(-1, 4)[:kmax]
                best = bbox_overlaps(boxes, gt).max(dim=1).values if len(boxes) else torch.zeros(0)
                trials.append(dict(phrase=p, hits={k: bool((best[:k] >= self.iou_thr).any()) for k in self.topk},
                                   iou=float(best[0]) if len(best) else 0.0))
            # one result per sample: BaseMetric.evaluate(size) keeps ``size`` (= number of samples) results
            self.results.append(dict(img_id=_get(ds, 'img_id'), split=_get(ds, 'split') or 'all', phrases=trials))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Recall@k over all phrases and per split."""
        logger = MMLogger.get_current_instance()
        by_split: Dict[str, List[dict]] = defaultdict(list)
        for r in results:
            by_split[r['split']].extend(r['phrases'])
        trials = [t for r in results for t in r['phrases']]
        metrics = OrderedDict()
        for k in self.topk:
            metrics[f'Recall@{k}'] = 100.0 * float(np.mean([t['hits'][k] for t in trials])) if trials else 0.0
        for split, rs in sorted(by_split.items()):
            for k in self.topk:
                metrics[f'{split}_Recall@{k}'] = 100.0 * float(np.mean([t['hits'][k] for t in rs])) if rs else 0.0
            logger.info(f'{split}: ' + ', '.join(f'Recall@{k}={metrics[f"{split}_Recall@{k}"]:.2f}'
                                                 for k in self.topk) + f' ({len(rs)} phrases)')
        if self.outfile_prefix is not None:
            out = f'{self.outfile_prefix}.flickr.json'
            dump(dict(metrics=dict(metrics), iou_thr=self.iou_thr, merge_boxes=self.merge_boxes,
                      samples=results), out)
            logger.info(f'FlickrRecallMetric: per-phrase results written to {osp.abspath(out)}')
        return metrics
