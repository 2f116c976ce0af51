"""Classification accuracy of one predicted label per sample (NLVR2's true/false, X-VLM's text assignment)."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.fileio import dump
from mmengine.logging import MMLogger

from mmvlg.registry import METRICS


def _plain(value):
    """A label or id as JSON writes it (tensors and numpy scalars to Python numbers)."""
    if hasattr(value, 'numel') and value.numel() == 1:
        return value.item()
    return value.item() if hasattr(value, 'item') else value


@METRICS.register_module()
class ClassificationAccuracy(BaseMetric):
    """Accuracy, in percent like every mmvlg metric, of a predicted label (``pred_key``, e.g. ``pred_label`` that
    :class:`~mmvlg.models.multimodal.xvlm.XVLMNLVR` sets) against the ground truth (``gt_key``, e.g. the NLVR2
    ``label`` metainfo), one sample per statement. Keys: ``{prefix}/accuracy``, and with ``group_key`` (e.g.
    SynthRef NLVR2's ``template``) ``{prefix}/accuracy_{group}`` for each value of it.

    mmengine and mmdet have no classification accuracy (mmpretrain's ``Accuracy`` reads ``gt_label`` of its
    ``DataSample``); this one reads any two keys of mmvlg's data samples.

    Args:
        pred_key (str): The predicted label's key. Defaults to ``'pred_label'``.
        gt_key (str): The ground-truth label's key. Defaults to ``'label'``.
        group_key (str, optional): A key whose values group the samples for per-group accuracies.
        id_key (str): The key naming a sample in errors and in the dumped predictions. Defaults to ``'img_id'``.
        outfile_prefix (str, optional): If given (``tools/test.py --out PREFIX``), the predictions are written to
            ``{outfile_prefix}.classification.json`` (``[{"id", "pred", "label"}]``) and the metrics to
            ``{outfile_prefix}.classification_metrics.json``; samples without a ground truth (a test split
            without labels) are then written, not scored.
        collect_device (str): Device for collecting results across ranks. Defaults to 'cpu'.
        prefix (str, optional): Metric key prefix. Defaults to ``'classification'`` (the NLVR2 configs:
            ``'nlvr2'``).
    """

    default_prefix: Optional[str] = 'classification'

    def __init__(self, pred_key: str = 'pred_label', gt_key: str = 'label', group_key: Optional[str] = None,
                 id_key: str = 'img_id', outfile_prefix: Optional[str] = None, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.pred_key, self.gt_key, self.group_key, self.id_key = pred_key, gt_key, group_key, id_key
        self.outfile_prefix = outfile_prefix

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            name = ds.get(self.id_key)
            if self.pred_key not in ds:
                raise KeyError(f'ClassificationAccuracy: sample {name!r} has no prediction {self.pred_key!r} (the '
                               'model\'s predict mode sets it)')
            gt = ds.get(self.gt_key)
            if gt is None and self.outfile_prefix is None:
                raise KeyError(f'ClassificationAccuracy: sample {name!r} has no ground truth {self.gt_key!r} (a '
                               'split without labels can only be dumped: tools/test.py --out)')
            group = ds.get(self.group_key) if self.group_key is not None else None
            self.results.append(dict(id=_plain(name), pred=int(_plain(ds[self.pred_key])),
                                     label=None if gt is None else int(_plain(gt)), group=group))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        if not results:
            raise ValueError('ClassificationAccuracy: no result to evaluate')
        scored = [r for r in results if r['label'] is not None]
        metrics: Dict[str, float] = {}
        if scored:
            metrics['accuracy'] = 100.0 * sum(r['pred'] == r['label'] for r in scored) / len(scored)
            if self.group_key is not None:
                groups: Dict[str, List[bool]] = {}
                for r in scored:
                    groups.setdefault(str(r['group']), []).append(r['pred'] == r['label'])
                for g, hits in sorted(groups.items()):
                    metrics[f'accuracy_{g}'] = 100.0 * sum(hits) / len(hits)
            MMLogger.get_current_instance().info(
                f'accuracy {metrics["accuracy"]:.2f} over {len(scored)} samples')
        if self.outfile_prefix is not None:
            out = f'{self.outfile_prefix}.classification.json'
            dump([dict(id=r['id'], pred=r['pred'], label=r['label']) for r in results], out)
            dump(dict(metrics, num_samples=len(results), num_scored=len(scored)),
                 f'{self.outfile_prefix}.classification_metrics.json')
            MMLogger.get_current_instance().info(f'ClassificationAccuracy: {len(results)} predictions written to '
                                                 f'{osp.abspath(out)}')
        return metrics
