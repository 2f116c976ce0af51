"""VQA v2 (https://visualqa.org): questions + annotators' answers -> soft scores over an answer vocabulary.

Files, as the VQA v2 release writes them:

* questions: ``{"data_subtype": "train2014", "questions": [{"question_id", "image_id", "question"}, ...]}``
  (``v2_OpenEnded_mscoco_{split}_questions.json``);
* annotations (absent for test splits): ``{"annotations": [{"question_id", "image_id", "answers": [{"answer",
  "answer_confidence", "answer_id"}, ... 10], "multiple_choice_answer", "answer_type", "question_type"}, ...]}``
  (``v2_mscoco_{split}_annotations.json``);
* the answer vocabulary: a JSON list or one answer a line (3129 answers in ViLT/METER/FIBER: the normalized
  ``multiple_choice_answer`` values seen at least 9 times in train+val, :func:`build_answer_list`).

Answers are normalized with :func:`mmvlg.evaluation.metrics.vqa_metric.normalize_answer`, the function the VQA
accuracy uses, so a target and the metric agree on what matches.
"""
import json
import os.path as osp
import warnings
from collections import Counter
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset

from mmvlg.evaluation.metrics.vqa_metric import normalize_answer
from mmvlg.registry import DATASETS
from mmvlg.utils.answer_list import load_answer_list

from .seeding import SampleSeedingMixin
from .validation import (
    DEFAULT_MAX_IMAGE_SIZE,
    AnnotationError,
    ImageFileChecker,
    check_max_image_size,
    check_text_lengths,
    image_check_info,
    warn_skipped,
    warn_truncated,
)

SCORE_TYPES = ('vqa', 'min3')
UNLISTED_ANSWERS = ('ignore', 'warn', 'error')


def answer_soft_score(count: int, num_answers: int = 10, score_type: str = 'vqa') -> float:
    """Soft target of an answer given by ``count`` of the ``num_answers`` annotators.

    ``'vqa'``: the VQA accuracy a prediction of this answer gets (the mean over leave-one-annotator-out subsets
    of ``min(1, matches / 3)``): 0.3, 0.6, 0.9, 1 for 1, 2, 3, >= 4 of 10 annotators, the scores of the
    authors' (ViLT/METER) ``get_score``; 1 for a match when there is a single answer. ``'min3'``:
    ``min(1, count / 3)`` (BUTD-style).
    """
    if score_type not in SCORE_TYPES:
        raise ValueError(f'score_type must be one of {SCORE_TYPES}, got {score_type!r}')
    if count <= 0:
        return 0.0
    if score_type == 'min3':
        return min(1.0, count / 3.0)
    if num_answers <= 1:
        return 1.0
    n = num_answers
    return (n - count) / n * min(1.0, count / 3.0) + count / n * min(1.0, (count - 1) / 3.0)


def load_answer_vocab(answers: Union[str, Sequence[str]]) -> List[str]:
    """An answer vocabulary given as a list or a file (JSON list, or one answer a line):
    :func:`mmvlg.utils.answer_list.load_answer_list` (repeated answers allowed: the first index counts), its
    errors as :class:`AnnotationError`."""
    try:
        return load_answer_list(answers, unique=False)
    except ValueError as err:
        raise AnnotationError(str(err)) from err


def build_answer_list(annotation_files: Iterable[str], min_count: int = 9) -> List[str]:
    """The answer vocabulary of ViLT/METER/FIBER: the normalized ``multiple_choice_answer`` of every question of
    the given annotation files, kept when it occurs at least ``min_count`` times (3129 answers for VQA v2
    train+val with 9), most frequent first (ties alphabetically)."""
    counts: Counter = Counter()
    for path in annotation_files:
        for k, ann in enumerate(_load_object(path, 'annotations')['annotations']):
            if not isinstance(ann, dict) or not isinstance(ann.get('multiple_choice_answer'), str):
                raise AnnotationError(f'{path}: annotation {k} (question id '
                                      f'{ann.get("question_id") if isinstance(ann, dict) else None}) has no '
                                      '"multiple_choice_answer" string')
            counts[normalize_answer(ann['multiple_choice_answer'])] += 1
    return [a for a, c in sorted(counts.items(), key=lambda x: (-x[1], x[0])) if c >= min_count and a]


def _load_object(path: str, key: str) -> Dict[str, Any]:
    if not osp.isfile(path):
        raise FileNotFoundError(f'VQA file {path!r} does not exist')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnnotationError(f'{path}: not a valid JSON file ({err})') from err
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise AnnotationError(f'{path}: expected a JSON object with a "{key}" list (VQA v2 format)')
    return data


@DATASETS.register_module()
class VQAv2Dataset(SampleSeedingMixin, BaseDataset):
    """VQA v2-format questions (and answers), one sample per question (see the module doc for the files).

    ``data_info`` keys: ``img_path``, ``img_id`` (the image id), ``question_id``, ``text`` (the question),
    ``split`` and, with annotations, ``answers`` (the annotators' raw answers, for
    :class:`~mmvlg.evaluation.VQAAccuracy`), ``answer_labels`` / ``answer_scores`` (indices into the answer
    vocabulary and their soft scores, :func:`answer_soft_score`; answers outside the vocabulary get none),
    ``answer_type`` and ``question_type`` when given. Pack with
    :class:`~mmvlg.datasets.transforms.PackImageTextInputs`.

    Args:
        ann_file (str): The questions file.
        answer_file (str, optional): The annotations file; None for test splits (no answers). Relative to
            ``data_root``.
        answer_list (str | list[str], optional): The answer vocabulary (the same as the model's
            :class:`~mmvlg.models.heads.VQAHead` ``answers``; a file path is relative to the working directory,
            as the head's); needed for training targets.
        img_template (str): Image file name under ``data_prefix['img']``, formatted with ``image_id``,
            ``data_subtype`` (from the questions file) and ``question_id``. Defaults to COCO's
            ``'COCO_{data_subtype}_{image_id:012d}.jpg'``.
        score_type (str): ``'vqa'`` (default) or ``'min3'``, see :func:`answer_soft_score`.
        filter_unanswerable (bool, optional): Drop questions none of whose answers is in the vocabulary (as the
            authors do for training). Defaults to ``not test_mode``.
        split (str, optional): Name reported by metrics (default: the questions file's ``data_subtype``, else its
            file name).
        check_images (bool): Check at start-up, from the file headers, that every image file exists, is an image
            and is no larger than ``max_image_size``. Defaults to True. mmvlg's ``LoadImageFromFile`` checks the
            decoded image again at load time and names the file and the question in its errors.
        skip_invalid (bool): Skip (and count in a warning) the questions whose image fails ``check_images``
            instead of raising. Malformed files and entries are always errors. Defaults to False.
        max_image_size (int, optional): Largest allowed image side in pixels. Defaults to 8192; None: no limit.
        text_encoder (dict, optional): The model's text encoder config (``name_or_path`` or ``tokenizer``, and
            ``max_length``); when given, questions longer than ``max_length`` tokens are counted in a warning.
        unlisted_answers (str): Training (not ``test_mode``) with ``answer_list``: what an annotator's answer
            outside the vocabulary does. ``'ignore'`` (default): it gets no label (a classifier cannot output it;
            X-VLM's generator is not trained on it); ``'warn'``: the same, and the answers left out are counted in
            one warning naming the first question; ``'error'``: an :class:`AnnotationError` naming the file, the
            question id and the answer.
        **kwargs: :class:`mmengine.dataset.BaseDataset` arguments (``data_root``, ``data_prefix=dict(img=...)``,
            ``pipeline``, ``test_mode``, ...).

    Raises:
        AnnotationError: A malformed file or entry; the message names the file and the question id.
    """

    METAINFO = dict(task='vqa')

    def __init__(self, *args, answer_file: Optional[str] = None,
                 answer_list: Optional[Union[str, Sequence[str]]] = None,
                 img_template: str = 'COCO_{data_subtype}_{image_id:012d}.jpg', score_type: str = 'vqa',
                 filter_unanswerable: Optional[bool] = None, split: Optional[str] = None, check_images: bool = True,
                 skip_invalid: bool = False, max_image_size: Optional[int] = DEFAULT_MAX_IMAGE_SIZE,
                 text_encoder: Optional[dict] = None, unlisted_answers: str = 'ignore', **kwargs) -> None:
        if unlisted_answers not in UNLISTED_ANSWERS:
            raise ValueError(f'VQAv2Dataset: unlisted_answers must be one of {UNLISTED_ANSWERS}, got '
                             f'{unlisted_answers!r}')
        self.unlisted_answers = unlisted_answers
        if score_type not in SCORE_TYPES:
            raise ValueError(f'VQAv2Dataset: score_type must be one of {SCORE_TYPES}, got {score_type!r}')
        self.answer_file, self.answer_list, self.img_template = answer_file, answer_list, img_template
        self.score_type, self.split, self.check_images = score_type, split, check_images
        self.filter_unanswerable = filter_unanswerable
        self.skip_invalid, self.text_encoder = skip_invalid, text_encoder
        self.max_image_size = check_max_image_size(max_image_size, type(self).__name__)
        kwargs.setdefault('data_prefix', dict(img=''))
        super().__init__(*args, **kwargs)

    def get_data_info(self, idx: int) -> dict:
        """The data info of sample ``idx``, with the question's name and ``max_image_size`` for the loading
        transform's checks."""
        info = super().get_data_info(idx)
        info.update(image_check_info(f'{self.ann_file}: question {info["question_id"]} (image {info["img_id"]!r})',
                                     self.max_image_size))
        return info

    def _join(self, path: Optional[str]) -> Optional[str]:
        if path is None or osp.isabs(path) or not self.data_root:
            return path
        return osp.join(self.data_root, path)

    def _answer_index(self) -> Optional[Dict[str, int]]:
        if self.answer_list is None:
            return None
        answers = self.answer_list
        index: Dict[str, int] = {}
        for i, a in enumerate(load_answer_vocab(answers)):
            index.setdefault(normalize_answer(a), i)
        return index

    def _questions(self) -> List[dict]:
        data = _load_object(self.ann_file, 'questions')
        subtype = data.get('data_subtype', '')
        if self.split is None:
            self.split = subtype or osp.splitext(osp.basename(self.ann_file))[0]
        out, seen = [], set()
        for k, q in enumerate(data['questions']):
            qid = q.get('question_id') if isinstance(q, dict) else None
            where = f'{self.ann_file}: question {qid if qid is not None else f"entry {k}"}'
            if not isinstance(q, dict) or qid is None or 'image_id' not in q:
                raise AnnotationError(f'{where} needs "question_id", "image_id" and "question", got {q!r}')
            if not isinstance(q.get('question'), str) or not q['question'].strip():
                raise AnnotationError(f'{where} has an empty or non-string question {q.get("question")!r}')
            if qid in seen:
                raise AnnotationError(f'{where} appears twice')
            seen.add(qid)
            out.append(dict(q, data_subtype=subtype))
        return out

    def _annotations(self, questions: Dict[Any, dict]) -> Dict[Any, dict]:
        path = self._join(self.answer_file)
        anns = {}
        for k, ann in enumerate(_load_object(path, 'annotations')['annotations']):
            qid = ann.get('question_id') if isinstance(ann, dict) else None
            where = f'{path}: question {qid if qid is not None else f"entry {k}"}'
            if qid not in questions:
                raise AnnotationError(f'{where} is not in the questions file {self.ann_file}')
            if ann.get('image_id', questions[qid]['image_id']) != questions[qid]['image_id']:
                raise AnnotationError(f'{where} has image id {ann["image_id"]} but the question has '
                                      f'{questions[qid]["image_id"]}')
            answers = ann.get('answers')
            if not isinstance(answers, list) or not answers:
                raise AnnotationError(f'{where} has no "answers" list')
            raw = []
            for a in answers:
                a = a.get('answer') if isinstance(a, dict) else a
                if not isinstance(a, str):
                    raise AnnotationError(f'{where} has an answer that is not a string: {a!r}')
                raw.append(a)
            anns[qid] = dict(ann, answers=raw)
        missing = [qid for qid in questions if qid not in anns]
        if missing:
            raise AnnotationError(f'{path}: no annotation for question {missing[0]} of {self.ann_file} '
                                  f'({len(missing)} questions without answers)')
        return anns

    def load_data_list(self) -> List[dict]:
        questions = self._questions()
        by_id = {q['question_id']: q for q in questions}
        anns = self._annotations(by_id) if self.answer_file is not None else None
        index = self._answer_index()
        if anns is not None and index is None and not self.test_mode:
            raise ValueError(f'VQAv2Dataset ({self.ann_file}): training needs answer_list (the answer vocabulary)')
        filter_unanswerable = (not self.test_mode) if self.filter_unanswerable is None else self.filter_unanswerable
        img_prefix = self.data_prefix.get('img', '')
        checker = ImageFileChecker(self.max_image_size)
        data_list, dropped, skipped, unlisted = [], 0, [], []
        for q in questions:
            qid = q['question_id']
            try:
                name = self.img_template.format(image_id=q['image_id'], data_subtype=q['data_subtype'],
                                                question_id=qid)
            except (KeyError, ValueError, IndexError) as err:
                raise AnnotationError(f'{self.ann_file}: question {qid}: img_template {self.img_template!r} does not '
                                      f'fit image id {q["image_id"]!r} ({err})') from err
            img_path = osp.join(img_prefix, name)
            if self.check_images:
                problem = checker(img_path)
                if problem is not None:
                    error, msg = problem
                    if not self.skip_invalid:
                        raise error(f'{self.ann_file}: question {qid}: {msg}')
                    skipped.append(f'{self.ann_file}: question {qid}: {msg}')
                    continue
            info = dict(img_path=img_path, img_id=q['image_id'], question_id=qid, text=q['question'].strip(),
                        split=self.split)
            if anns is not None:
                ann = anns[qid]
                info['answers'] = ann['answers']
                for key in ('answer_type', 'question_type'):
                    if key in ann:
                        info[key] = ann[key]
                if index is not None:
                    counts = Counter(normalize_answer(a) for a in ann['answers'])
                    outside = [a for a in counts if a not in index]
                    if outside and not self.test_mode and self.unlisted_answers != 'ignore':
                        listed = self.answer_list if isinstance(self.answer_list, str) else '(given as a list)'
                        where = (f'{self._join(self.answer_file)}: question {qid} has the answer {outside[0]!r}, '
                                 f'which is not in the answer list {listed}')
                        if self.unlisted_answers == 'error':
                            raise AnnotationError(f'{where} (unlisted_answers=\'warn\' trains on the listed answers '
                                                  'only and counts the others)')
                        unlisted.append((where, sum(counts[a] for a in outside)))
                    labels = sorted({index[a] for a in counts if a in index})
                    by_label = {index[a]: c for a, c in counts.items() if a in index}
                    info['answer_labels'] = labels
                    info['answer_scores'] = [answer_soft_score(by_label[i], len(ann['answers']), self.score_type)
                                             for i in labels]
                    if not labels and filter_unanswerable:
                        dropped += 1
                        continue
            data_list.append(info)
        warn_skipped(self.ann_file, skipped, 'question(s)')
        if unlisted:
            warnings.warn(f'VQAv2Dataset: {sum(n for _, n in unlisted)} annotator answers of {len(unlisted)} '
                          f'questions are not in the answer list and get no training label (unlisted_answers='
                          f'\'warn\'); first: {unlisted[0][0]}')
        if not data_list:
            raise AnnotationError(f'{self.ann_file}: no question left ({dropped} without an answer in the vocabulary, '
                                  f'{len(skipped)} skipped as invalid)')
        if self.text_encoder is not None:
            max_length, num_truncated, _ = check_text_lengths([d['text'] for d in data_list],
                                                              [[] for _ in data_list], self.text_encoder)
            warn_truncated(self.ann_file, num_truncated, len(data_list), max_length)
        return data_list
