"""Question-only (text-only, hypothesis-only) baselines of the VQA-style data sets mmvlg reads.

A model that is not clearly above these numbers answers from the text alone: it has not learned to use the
image. The tool reads the data sets exactly as training does: it builds the config's training and evaluation
data sets (``train_dataloader.dataset`` and ``val_dataloader.dataset`` or ``test_dataloader.dataset``), without
their pipelines, and reads from each sample's ``data_info``

* the text: ``text`` (the question, statement or hypothesis);
* the target: ``answers`` (the annotators' answers: VQA v2, SynthRef VQA; scored with VQA accuracy, as
  :class:`~mmvlg.evaluation.VQAAccuracy`) or ``label`` / ``gt_label`` (one class: NLVR2 true/false, entailment
  classes, the index of the right choice; scored with accuracy);
* the groups of the breakdown: ``question_type`` and ``answer_type`` where the annotation has them (SynthRef VQA:
  count / exist / color / relation_color / shape; VQA v2: its 65 question prefixes and yes/no, number, other) and
  ``hypothesis_type`` (SynthRef entailment's templates; :class:`~mmvlg.datasets.SNLIVEDataset`'s ``label`` is
  0 entailment, 1 neutral, 2 contradiction).

The *question-only* policy answers each evaluation text with the training answer that scores best on the
training samples with the same normalized text. Texts never seen in training back off to the samples whose
text starts with the same ``--prefix-words`` words (VQA v2's question types are such prefixes), then to the
whole training set. The *prior* policy always gives the best answer of the whole training set.

Usage::

    python tools/analysis_tools/text_only_baseline.py CONFIG [--split val|test] [--prefix-words 3]
        [--json-out F] [--cfg-options ...]

It prints a table (overall and per group, percent) and the same numbers as one line of JSON.
"""
import argparse
import json
import os.path as osp
import re
import sys
from collections import Counter, defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from mmengine.config import DictAction  # noqa: E402

from mmvlg.evaluation.metrics.vqa_metric import normalize_answer, vqa_accuracy  # noqa: E402

GROUP_KEYS = ('question_type', 'answer_type', 'hypothesis_type')
LABEL_KEYS = ('label', 'gt_label')


def normalize_text(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed (articles and number words are kept: VQA v2's
    question types are prefixes such as 'what color is the')."""
    return ' '.join(re.sub(r"[^\w\s']", ' ', text.lower()).split())


class Sample:
    """What the baseline reads of one data sample: the text, the target and the groups."""

    __slots__ = ('text', 'answers', 'label', 'groups')

    def __init__(self, text: str, answers: Optional[List[str]] = None, label=None,
                 groups: Optional[Dict[str, str]] = None) -> None:
        self.text = normalize_text(text)
        self.answers = answers
        self.label = label
        self.groups = groups or {}

    @property
    def kind(self) -> str:
        return 'vqa' if self.answers is not None else 'label'

    def candidates(self) -> List[str]:
        return list(self.answers) if self.answers is not None else [str(self.label)]

    def score(self, prediction: str) -> float:
        """1 for a right answer (VQA accuracy for annotators' answers)."""
        if self.answers is not None:
            return vqa_accuracy(prediction, self.answers)
        return float(prediction == str(self.label))


def sample_from_info(info: dict, where: str) -> Sample:
    """A :class:`Sample` from a data set's ``data_info``; a clear error when the sample has no text or target."""
    text = info.get('text', info.get('question'))
    if not isinstance(text, str):
        raise KeyError(f'{where}: the sample has no text (data_info keys: {sorted(info)})')
    groups = {k: str(info[k]) for k in GROUP_KEYS if info.get(k) is not None}
    answers = info.get('answers')
    if answers is not None:
        answers = [a['answer'] if isinstance(a, dict) else a for a in answers]
        if not answers:
            raise ValueError(f'{where}: the sample has an empty answer list')
        return Sample(text, answers=[str(a) for a in answers], groups=groups)
    for key in LABEL_KEYS:
        if info.get(key) is not None:
            label = info[key]
            if hasattr(label, 'item'):
                label = label.item()
            return Sample(text, label=label, groups=groups)
    raise KeyError(f'{where}: the sample has no target (answers, label or gt_label; data_info keys: {sorted(info)})'
                   '; is this an annotated split?')


def best_answer(samples: Sequence[Sample]) -> str:
    """The answer with the highest total score over ``samples`` (ties: the first in sorted order).

    A candidate scores only on the samples whose targets contain it, so the totals are summed over each sample's
    own distinct answers (linear in the number of answers, fast on VQA v2's 443k training questions).
    """
    totals: Dict[str, float] = defaultdict(float)
    for s in samples:
        cands = {normalize_answer(a) for a in s.candidates()} if s.kind == 'vqa' else set(s.candidates())
        for c in cands:
            totals[c] += s.score(c)
    return max(sorted(totals), key=lambda c: totals[c])


class QuestionOnlyPolicy:
    """The best training answer per normalized text, backing off to the text's first words, then to all.

    Args:
        train (list[Sample]): The training samples.
        prefix_words (int): Words of the back-off prefix (0: no prefix level).
    """

    def __init__(self, train: Sequence[Sample], prefix_words: int = 3) -> None:
        if not train:
            raise ValueError('QuestionOnlyPolicy: no training sample')
        self.prefix_words = prefix_words
        by_text: Dict[str, List[Sample]] = defaultdict(list)
        by_prefix: Dict[str, List[Sample]] = defaultdict(list)
        for s in train:
            by_text[s.text].append(s)
            if prefix_words:
                by_prefix[self.prefix(s.text)].append(s)
        self.prior = best_answer(train)
        self.by_text = {t: best_answer(ss) for t, ss in by_text.items()}
        self.by_prefix = {p: best_answer(ss) for p, ss in by_prefix.items()}

    def prefix(self, text: str) -> str:
        return ' '.join(text.split()[:self.prefix_words])

    def __call__(self, text: str) -> Tuple[str, str]:
        """(answer, the level it came from: ``'text'``, ``'prefix'`` or ``'prior'``) for a raw or normalized text."""
        text = normalize_text(text)
        if text in self.by_text:
            return self.by_text[text], 'text'
        if self.prefix_words and self.prefix(text) in self.by_prefix:
            return self.by_prefix[self.prefix(text)], 'prefix'
        return self.prior, 'prior'


def evaluate(train: Sequence[Sample], test: Sequence[Sample], prefix_words: int = 3) -> Dict[str, object]:
    """Scores (percent) of the question-only and the prior policies on ``test``, overall and per group.

    Returns:
        dict: ``num_train``, ``num_test``, ``metric`` (``'vqa_accuracy'`` or ``'accuracy'``),
        ``question_only`` and ``prior`` (each ``{'overall': x, '<group key>/<group>': x, ...}``) and
        ``backoff`` (how many test texts were answered at each level).
    """
    if not test:
        raise ValueError('evaluate: no evaluation sample')
    kinds = {s.kind for s in list(train) + list(test)}
    if len(kinds) != 1:
        raise ValueError('evaluate: the samples mix annotators\' answers and labels')
    policy = QuestionOnlyPolicy(train, prefix_words)
    sums: Dict[str, Dict[str, List[float]]] = dict(question_only=defaultdict(list), prior=defaultdict(list))
    backoff = Counter()
    for s in test:
        answer, level = policy(s.text)
        backoff[level] += 1
        keys = ['overall'] + [f'{k}/{v}' for k, v in sorted(s.groups.items())]
        for name, pred in (('question_only', answer), ('prior', policy.prior)):
            value = s.score(pred)
            for key in keys:
                sums[name][key].append(value)
    out: Dict[str, object] = dict(num_train=len(train), num_test=len(test),
                                  metric='vqa_accuracy' if kinds == {'vqa'} else 'accuracy',
                                  backoff=dict(backoff))
    for name, table in sums.items():
        ordered = sorted(table.items(), key=lambda kv: (kv[0] != 'overall', kv[0]))
        out[name] = {k: round(100.0 * sum(v) / len(v), 2) for k, v in ordered}
    out['group_sizes'] = {k: len(v) for k, v in sums['question_only'].items()}
    return out


def dataset_samples(dataset, where: str) -> List[Sample]:
    """Every sample of an mmengine data set (read through ``get_data_info``, no pipeline)."""
    samples = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        ident = info.get('question_id', info.get('img_id', i))
        samples.append(sample_from_info(info, f'{where}, sample {ident}'))
    return samples


def build_datasets(config: str, split: str, cfg_options: Optional[dict] = None):
    """The config's training data set and its ``split`` evaluation data set, without pipelines."""
    from mmengine.config import Config

    from mmvlg.registry import DATASETS
    from mmvlg.utils import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    out = []
    for key in ('train_dataloader', f'{split}_dataloader'):
        if cfg.get(key) is None or cfg[key].get('dataset') is None:
            raise KeyError(f'{config}: the config has no {key}.dataset')
        ds_cfg = cfg[key]['dataset'].copy()
        ds_cfg['pipeline'] = []
        if ds_cfg.get('type') in ('ConcatDataset', 'mmengine.ConcatDataset', 'RepeatDataset', 'ClassBalancedDataset'):
            raise ValueError(f'{config}: {key}.dataset is a {ds_cfg["type"]}; give a config whose data set reads the '
                             'annotation files directly')
        dataset = DATASETS.build(ds_cfg)
        out.append(dataset_samples(dataset, f'{config}: {key}.dataset ({getattr(dataset, "ann_file", "")})'))
    return out


def format_table(results: Dict[str, object]) -> str:
    metric = results['metric']
    rows = [f'| group | samples | question-only ({metric}) | prior ({metric}) |', '|---|---|---|---|']
    for key, value in results['question_only'].items():
        rows.append(f'| {key} | {results["group_sizes"][key]} | {value:.2f} | {results["prior"][key]:.2f} |')
    return '\n'.join(rows)


def main(argv: Optional[Iterable[str]] = None) -> int:
    parser = argparse.ArgumentParser(description='Question-only (text-only) baseline of a VQA-style data set')
    parser.add_argument('config', help='a config whose train and val/test data sets are the VQA-style set')
    parser.add_argument('--split', default='val', choices=['val', 'test'], help='evaluation data set')
    parser.add_argument('--prefix-words', type=int, default=3,
                        help='words of the back-off prefix for texts not seen in training (0: none)')
    parser.add_argument('--json-out', help='also write the results to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config settings (as tools/train.py)')
    args = parser.parse_args(list(argv) if argv is not None else None)
    train, test = build_datasets(args.config, args.split, args.cfg_options)
    results = evaluate(train, test, args.prefix_words)
    print(format_table(results))
    print(json.dumps(results))
    if args.json_out:
        with open(args.json_out, 'w') as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
