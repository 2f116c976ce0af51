"""Flickr30k Entities phrase grounding in MDETR's annotation format.

MDETR's files ``final_flickr_separateGT_{train,val,test}.json`` (and ``final_flickr_mergedGT_*.json``) hold
one ``images`` entry per *caption* (five per Flickr30k image) with ``caption``, ``file_name``, ``height``
and ``width`` (strings in MDETR's release), ``original_img_id``, ``sentence_id`` and ``tokens_positive_eval``:
for every annotated phrase of the caption, in caption order, its list of [start, end) character spans.
Each ``annotations`` entry is one box with the spans of the phrase(s) it belongs to (``tokens_positive``);
a box that several phrases name (or two identical boxes of different entities) carries all their spans.
"""
import os.path as osp
import warnings
from typing import List, Sequence

from mmengine.logging import print_log

from mmvlg.registry import DATASETS

from .refexp import MDETRRefExpDataset
from .validation import AnnotationError, check_spans

Spans = Sequence[Sequence[int]]


def _overlap(a: Spans, b: Spans) -> bool:
    """Whether any [start, end) span of ``a`` shares a character with any span of ``b``."""
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)


@DATASETS.register_module()
class Flickr30kEntitiesDataset(MDETRRefExpDataset):
    """Flickr30k Entities phrase grounding (`Plummer et al., ICCV 2015 <https://arxiv.org/abs/1505.04870>`_)
    in MDETR's format; one sample per caption, several phrases per caption.

    ``data_info`` holds the keys of :class:`~mmvlg.datasets.MDETRRefExpDataset` (``original_id`` is the
    Flickr30k image id, ``sentence_id`` the caption's index for that image) plus ``phrases``: for every
    phrase of ``tokens_positive_eval``, in that order, a dict with

    * ``phrase_id``: the phrase's index in the caption (the order of the model's per-phrase predictions);
    * ``tokens_positive``: its [start, end) character spans of ``text``;
    * ``gt_bboxes``: every ground-truth box of the phrase, x1, y1, x2, y2 in original image pixels (one
      box per entity instance in the separateGT files, their union in the mergedGT files).

    A box belongs to a phrase when its ``tokens_positive`` overlap the phrase's spans (MDETR writes the
    phrase spans themselves), so a box may belong to several phrases. Without ``tokens_positive_eval`` the
    phrases are the distinct spans of the boxes. Captions without any box (every phrase non-visual) are
    dropped from training sets and kept, with no phrase, in test sets. A phrase of ``tokens_positive_eval``
    with no box, or a box of no phrase, is an :class:`~mmvlg.datasets.AnnotationError` (or, with
    ``skip_invalid=True``, the caption is skipped with a warning).

    To carry the phrases to a metric, add ``'phrases'`` to ``PackGroundingInputs``' ``meta_keys``.

    Args:
        split (str, optional): Name reported by metrics; defaults to the file name without ``final_``
            (e.g. ``'flickr_separateGT_test'``).
        **kwargs: Passed to :class:`~mmvlg.datasets.MDETRRefExpDataset`.
    """

    REQUIRE_BOXES = False
    EXTRA_IMAGE_KEYS = ('sentence_id', 'original_img_id')
    ENTRY_NAME = 'caption'

    def load_data_list(self) -> List[dict]:
        if self.split is None:
            name = osp.splitext(osp.basename(self.ann_file))[0]
            self.split = name[len('final_'):] if name.startswith('final_') else name
        data_list, skipped, no_box = [], [], 0
        for info in super().load_data_list():
            try:
                info['phrases'] = self._phrases(info)
            except AnnotationError as err:
                if not self.skip_invalid:
                    raise
                skipped.append(str(err))
                continue
            if not info['phrases'] and not self.test_mode:
                no_box += 1
                continue
            data_list.append(info)
        if skipped:
            warnings.warn(f'{self.ann_file}: skipped {len(skipped)} caption(s) with inconsistent phrases '
                          f'(skip_invalid=True); first: {skipped[0]}')
        if no_box:
            print_log(f'{self.ann_file}: dropped {no_box} caption(s) without any box from the training set',
                      logger='current')
        return data_list

    def _phrases(self, info: dict) -> List[dict]:
        """The ``phrases`` of one caption (see the class docstring)."""
        where = f'{self.ann_file}: caption {info["img_id"]} ({osp.basename(info["img_path"])})'
        text, instances = info['text'], info['instances']
        eval_spans = info.get('tokens_positive_eval')
        if eval_spans is None:
            distinct = sorted({tuple(sp) for inst in instances for sp in inst['tokens_positive']})
            eval_spans = [[list(sp)] for sp in distinct]
        if not isinstance(eval_spans, list):
            raise AnnotationError(f'{where}: tokens_positive_eval must be a list (one list of spans per phrase), '
                                  f'got {eval_spans!r}')
        for p, spans in enumerate(eval_spans):
            try:
                if not isinstance(spans, list) or not spans:
                    raise AnnotationError(spans)
                eval_spans[p] = check_spans(spans, text, where, 'tokens_positive_eval')
            except AnnotationError as err:
                raise AnnotationError(f'{where}: tokens_positive_eval entry {spans!r} is not a list of [start, end] '
                                      f'spans (integers) of the caption {text!r}') from err
        members = [[p for p, spans in enumerate(eval_spans) if _overlap(inst['tokens_positive'], spans)]
                   for inst in instances]
        for inst, m in zip(instances, members):
            if not m:
                raise AnnotationError(f'{where}: the box {inst["bbox"]} with tokens_positive '
                                      f'{inst["tokens_positive"]} belongs to no phrase of tokens_positive_eval')
        phrases = []
        for p, spans in enumerate(eval_spans):
            boxes = [list(inst['bbox']) for inst, m in zip(instances, members) if p in m]
            if not boxes:
                phrase = ', '.join(repr(text[s:e]) for s, e in spans)
                raise AnnotationError(f'{where}: phrase {p} ({phrase}) has no box')
            phrases.append(dict(phrase_id=p, tokens_positive=[list(sp) for sp in spans], gt_bboxes=boxes))
        return phrases
