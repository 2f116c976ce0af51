"""VQA accuracy (the VQA v2 evaluation)."""
import re
from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
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


@METRICS.register_module()
class VQAAccuracy(BaseMetric):
    """VQA accuracy (percent) of the predicted answers (``pred_answer``) against the annotators' answers
    (``answers`` metainfo, a list of strings), as :func:`vqa_accuracy`. Key: ``{prefix}/accuracy``.
    """
    default_prefix: Optional[str] = 'vqa'

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            if 'pred_answer' not in ds or 'answers' not in ds:
                raise KeyError(f'VQAAccuracy: sample {ds.get("question_id")} needs "pred_answer" and "answers"')
            answers = ds['answers']
            answers = [a['answer'] if isinstance(a, dict) else a for a in answers]
            self.results.append(dict(question_id=ds.get('question_id'), pred=ds['pred_answer'],
                                     acc=vqa_accuracy(ds['pred_answer'], answers)))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        if not results:
            raise ValueError('VQAAccuracy: no result to evaluate')
        acc = 100.0 * sum(r['acc'] for r in results) / len(results)
        MMLogger.get_current_instance().info(f'VQA accuracy {acc:.2f} over {len(results)} questions')
        return dict(accuracy=acc)
