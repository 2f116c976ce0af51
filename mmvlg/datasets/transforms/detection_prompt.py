"""Object detection as grounding: class names joined into one text prompt (GLIP, FIBER section 3.3)."""
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from mmvlg.registry import TRANSFORMS

from .formatting import DEFAULT_META_KEYS

#: :class:`~mmvlg.datasets.transforms.PackGroundingInputs` meta keys for detection-as-grounding samples.
DETECTION_META_KEYS = tuple(DEFAULT_META_KEYS) + ('class_spans', 'prompt_chunks')

Span = List[int]


def clean_class_name(name: str) -> str:
    """A class name as it goes into the prompt, as GLIP/FIBER clean it: parenthesized parts dropped,
    underscores as spaces, doubled spaces collapsed, e.g. ``'traffic_light'`` -> ``'traffic light'``."""
    name = re.sub(r'\(.*\)', '', name)
    name = name.replace('_', ' ')
    name = re.sub(r'  +', ' ', name)
    return name.strip()


def build_detection_prompt(class_names: Sequence[str], order: Optional[Sequence[int]] = None,
                           separator: str = '. ') -> Tuple[str, List[Optional[Span]]]:
    """Join class names into one prompt and return each class's character span.

    Args:
        class_names (Sequence[str]): All class names of the data set, indexed by label.
        order (Sequence[int], optional): Labels to write, in this order. Defaults to all, in label order.
        separator (str): Written between two names (FIBER's COCO configs: ``'. '``, no trailing one).

    Returns:
        tuple: The prompt, e.g. ``'person. bicycle. car'``, and per label (all ``len(class_names)`` of them)
        its ``[start, end)`` span, or None for a label that is not in the prompt.
    """
    order = range(len(class_names)) if order is None else order
    spans: List[Optional[Span]] = [None] * len(class_names)
    prompt = ''
    for i, label in enumerate(order):
        name = clean_class_name(class_names[label])
        if not name:
            raise ValueError(f'class {label} ({class_names[label]!r}) has an empty name')
        if i:
            prompt += separator
        spans[label] = [len(prompt), len(prompt) + len(name)]
        prompt += name
    return prompt, spans


@TRANSFORMS.register_module()
class DetectionPrompt(BaseTransform):
    """Turn a detection sample into a grounding sample: the class names become the text and every box is
    grounded on the span of its class name (GLIP/FIBER's "object detection as phrase grounding").

    Reads ``text`` (the class names, a list/tuple: what mmdet's ``CocoDataset(return_classes=True)`` puts there)
    or the ``class_names`` argument, and ``gt_bboxes_labels``. Writes ``text`` (the prompt string),
    ``gt_tokens_positive`` (per box ``[[start, end]]``, the span of its class name; packed as the metainfo
    ``tokens_positive`` by :class:`~mmvlg.datasets.transforms.PackGroundingInputs`) and ``class_spans`` (per
    class label ``[[start, end]]``, or ``[]`` when the class is not in the prompt) with which the detector maps
    token scores back to class scores.

    At test time (``random_negatives=False``, the default) the prompt is every class in label order,
    ``"person. bicycle. car. ... toothbrush"``. In training with ``random_negatives=True`` the prompt follows
    the authors' sampling for detection data (``convert_object_detection_to_grounding_optimized_for_od``): all
    positive classes (those of the boxes) plus negatives drawn at random from the other classes: with
    probability ``control_probs[0]`` one negative, ``control_probs[1]`` none, ``control_probs[2]`` all
    ``max_negatives``, else a uniform number in ``[1, max_negatives]``; then everything shuffled.

    Data sets with more classes than fit in the text encoder's ``max_length`` (LVIS, some ODinW sets) are
    evaluated in chunks, as GLIP/FIBER's chunked evaluation: with ``chunk_size`` (test time only) the classes, in
    label order, are split into prompts of at most ``chunk_size`` names; ``prompt_chunks`` holds each chunk's
    ``dict(text=..., class_spans=...)`` (``class_spans`` over all classes, empty for those of other chunks) and
    ``text``/``class_spans`` are the first chunk's. :class:`~mmvlg.models.detectors.FIBERObjectDetector` runs
    the model once per chunk and merges the detections.

    Args:
        class_names (Sequence[str], optional): The class names, if ``text`` does not hold them.
        separator (str): Between two class names. Defaults to ``'. '`` (FIBER's ``SEPARATION_TOKENS``).
        random_negatives (bool): Sample negatives and shuffle (training). Defaults to False.
        max_negatives (int): Most negatives drawn (the authors' ``RANDOM_SAMPLE_NEG``, 85 for COCO: all).
        control_probs (tuple): Probabilities of one negative / no negative / all negatives (the first three of
            the authors' ``CONTROL_PROB``, (0.05, 0.05, 0.5) for COCO).
        chunk_size (int, optional): Classes per prompt for chunked evaluation (the authors' LVIS setting is
            40). Defaults to None: one prompt of all classes.
    """

    def __init__(self, class_names: Optional[Sequence[str]] = None, separator: str = '. ',
                 random_negatives: bool = False, max_negatives: int = 85,
                 control_probs: Sequence[float] = (0.05, 0.05, 0.5), chunk_size: Optional[int] = None) -> None:
        if chunk_size is not None and (chunk_size < 1 or random_negatives):
            raise ValueError(f'DetectionPrompt: chunk_size must be a positive number of classes, for evaluation '
                             f'only (random_negatives=False), got chunk_size={chunk_size}, '
                             f'random_negatives={random_negatives}')
        self.chunk_size = chunk_size
        if len(control_probs) != 3 or sum(control_probs) > 1 or min(control_probs) < 0:
            raise ValueError(f'DetectionPrompt: control_probs must be 3 probabilities summing to at most 1, got '
                             f'{control_probs}')
        self.class_names = list(class_names) if class_names is not None else None
        self.separator, self.random_negatives = separator, random_negatives
        self.max_negatives, self.control_probs = max_negatives, tuple(control_probs)

    def _num_negatives(self, available: int) -> int:
        full = min(self.max_negatives, available)
        u = np.random.rand()
        p_one, p_none, p_full = self.control_probs
        if u < p_one:
            return min(1, full)
        if u < p_one + p_none:
            return 0
        if u < p_one + p_none + p_full:
            return full
        return int(np.random.randint(max(1, full))) + 1 if full else 0

    def transform(self, results: dict) -> dict:
        names = self.class_names if self.class_names is not None else results.get('text')
        if isinstance(names, str) or not names:
            raise KeyError(f'DetectionPrompt: sample {results.get("img_path")} has no class names (use '
                           'CocoDataset(return_classes=True) or give class_names)')
        labels = np.asarray(results.get('gt_bboxes_labels', np.zeros(0)), dtype=np.int64).reshape(-1)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise ValueError(f'DetectionPrompt: sample {results.get("img_path")} has a label outside '
                             f'[0, {len(names)})')
        order = None
        if self.random_negatives:
            positives = sorted(set(labels.tolist()))
            others = [c for c in range(len(names)) if c not in set(positives)]
            num_neg = self._num_negatives(len(others))
            negatives = np.random.permutation(others)[:num_neg].tolist() if num_neg else []
            order = [int(c) for c in np.random.permutation(positives + negatives)]
        if self.chunk_size is not None:
            chunks = []
            for start in range(0, len(names), self.chunk_size):
                text, chunk_spans = build_detection_prompt(
                    names, range(start, min(start + self.chunk_size, len(names))), self.separator)
                chunks.append(dict(text=text, class_spans=[[sp] if sp is not None else [] for sp in chunk_spans]))
            results['prompt_chunks'] = chunks
        prompt, spans = build_detection_prompt(
            names, range(min(self.chunk_size, len(names))) if self.chunk_size else order, self.separator)
        results['text'] = prompt
        results['class_spans'] = [[span] if span is not None else [] for span in spans]
        # (with chunks, a box whose class is in a later chunk has no span in this text)
        results['gt_tokens_positive'] = [[list(spans[label])] if spans[label] is not None else []
                                         for label in labels.tolist()]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(separator={self.separator!r}, random_negatives={self.random_negatives},'
                f' max_negatives={self.max_negatives}, control_probs={self.control_probs},'
                f' chunk_size={self.chunk_size})')
