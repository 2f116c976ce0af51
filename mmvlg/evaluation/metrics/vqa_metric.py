"""VQA accuracy (the VQA v2 evaluation)."""
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Union

from mmengine.evaluator import BaseMetric
from mmengine.fileio import dump
from mmengine.logging import MMLogger

from mmvlg.registry import METRICS

_PERIOD = re.compile(r'(?<!\d)\.(?!\d)')  # a period that is not a decimal point
_PUNCT = re.compile(r'[;/\[\]"{}()=+\\_\-><@`,?!*#%^&$|~\']')
_ARTICLES = {'a', 'an', 'the'}
_NUMBERS = {'none': '0', 'zero': '0', 'one': '1', 'two': '2', 'three': '3', 'four': '4', 'five': '5', 'six': '6',
            'seven': '7', 'eight': '8', 'nine': '9', 'ten': '10'}


def normalize_answer(answer: str) -> str:
    """A light version of the official normalization: lower case, punctuation removed (decimal points kept),
    number words as digits, articles dropped, whitespace collapsed."""
    answer = answer.lower().replace('\n', ' ').replace('\t', ' ').strip()
    answer = _PUNCT.sub('', _PERIOD.sub('', answer))
    words = [_NUMBERS.get(w, w) for w in answer.split() if w not in _ARTICLES]
    return ' '.join(words)


def vqa_accuracy(pred: str, gt_answers: Sequence[str]) -> float:
    """VQA accuracy of one prediction against the annotators' answers (10 in VQA v2): the mean, over the
    leave-one-annotator-out subsets, of ``min(1, #matching answers in the subset / 3)``; with a single
    answer, 1 for a match."""
    if not gt_answers:
        raise ValueError('vqa_accuracy: no ground-truth answer')
    pred = normalize_answer(pred)
    gts = [normalize_answer(a) for a in gt_answers]
    if len(gts) == 1:
        return float(pred == gts[0])
    accs = []
    for i in range(len(gts)):
        others = gts[:i] + gts[i + 1:]
        accs.append(min(1.0, sum(a == pred for a in others) / 3.0))
    return sum(accs) / len(accs)


def _plain(value):
    """An id as JSON writes it (tensors and numpy scalars to Python numbers)."""
    return value.item() if hasattr(value, 'item') else value


@METRICS.register_module()
class VQAAccuracy(BaseMetric):
    """VQA accuracy, in percent like every mmvlg metric, of the predicted answers (``pred_answer``) against the
    annotators' answers (``answers`` metainfo, a list of strings), as :func:`vqa_accuracy`. Key:
    ``{prefix}/accuracy``.

    Args:
        outfile_prefix (str, optional): If given (``tools/test.py --out PREFIX``), the predicted answers are
            written to ``{outfile_prefix}.vqa.json`` in the VQA v2 results format that the evaluation server
            takes (``[{"question_id": int, "answer": str}, ...]``), and the metrics to
            ``{outfile_prefix}.vqa_metrics.json``. Questions without answers (a test-dev/test-std split) are
            then allowed: they are written, not scored.
        group_by (str | list[str], optional): Also report the accuracy per value of these metainfo keys of the
            samples, as ``{prefix}/{key}/{value}``: ``'answer_type'`` (VQA v2's ``yes/no``, ``number``, ``other``,
            as the official evaluation's per-answer-type accuracy) and/or ``'question_type'`` (SynthRef VQA's
            ``count``, ``exist``, ``color``, ``relation_color``, ``shape``). A sample without the key counts as
            ``unknown``. Defaults to None (overall accuracy only).
        collect_device (str): Device for collecting results across ranks. Defaults to 'cpu'.
        prefix (str, optional): Metric key prefix. Defaults to ``'vqa'``.
    """
    default_prefix: Optional[str] = 'vqa'

    def __init__(self, outfile_prefix: Optional[str] = None, group_by: Union[str, Sequence[str], None] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.outfile_prefix = outfile_prefix
        self.group_by = (group_by, ) if isinstance(group_by, str) else tuple(group_by or ())

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            answers = ds.get('answers')
            if 'pred_answer' not in ds or (not answers and self.outfile_prefix is None):
                raise KeyError(f'VQAAccuracy: sample {ds.get("question_id")} needs "pred_answer" and "answers" '
                               '(a split without answers can only be dumped: tools/test.py --out)')
            acc = None
            if answers:
                answers = [a['answer'] if isinstance(a, dict) else a for a in answers]
                acc = vqa_accuracy(ds['pred_answer'], answers)
            groups = {key: str(ds.get(key, 'unknown')) for key in self.group_by}
            self.results.append(dict(question_id=_plain(ds.get('question_id')), pred=str(ds['pred_answer']),
                                     acc=acc, groups=groups))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        if not results:
            raise ValueError('VQAAccuracy: no result to evaluate')
        logger = MMLogger.get_current_instance()
        scored = [r['acc'] for r in results if r['acc'] is not None]
        metrics = {}
        if scored:
            metrics['accuracy'] = 100.0 * sum(scored) / len(scored)
            logger.info(f'VQA accuracy {metrics["accuracy"]:.2f} over {len(scored)} questions')
            for key in self.group_by:
                per: Dict[str, List[float]] = {}
                for r in results:
                    if r['acc'] is not None:
                        per.setdefault(r.get('groups', {}).get(key, 'unknown'), []).append(r['acc'])
                for value, accs in sorted(per.items()):
                    metrics[f'{key}/{value}'] = 100.0 * sum(accs) / len(accs)
        if self.outfile_prefix is not None:
            out = f'{self.outfile_prefix}.vqa.json'
            dump([dict(question_id=r['question_id'], answer=r['pred']) for r in results], out)
            dump(dict(metrics, num_questions=len(results), num_scored=len(scored)),
                 f'{self.outfile_prefix}.vqa_metrics.json')
            logger.info(f'VQAAccuracy: {len(results)} answers written to {osp.abspath(out)} (VQA v2 results '
                        'format)')
        return metrics
