"""Referring-expression data sets in MDETR's annotation format.

MDETR's files (``finetune_refcoco_train.json``, ``finetune_refcoco+_testA.json``, ...) are COCO-style: one
``images`` entry *per expression* (``id``, ``file_name``, ``height``, ``width``, ``caption``, ``original_id``
of the COCO image, ...) and one ``annotations`` entry with the referred box (``bbox`` as x, y, w, h and
``tokens_positive``, the character spans of the caption that name the object).
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Tuple

from mmdet.datasets import BaseDetDataset

from mmvlg.registry import DATASETS

from .seeding import SampleSeedingMixin
from .validation import (
    DEFAULT_MAX_IMAGE_SIZE,
    AnnotationError,
    ImageError,
    ImageFileChecker,
    check_box_xywh,
    check_image_size,
    check_max_image_size,
    check_spans,
    check_text_lengths,
    check_unique_id,
    cut_span_message,
    image_check_info,
    warn_skipped,
    warn_truncated,
)

__all__ = ['AnnotationError', 'ImageError', 'load_json_annotations', 'MDETRRefExpDataset', 'RefCOCODataset',
           'RefCOCOPlusDataset', 'RefCOCOgDataset', 'SynthRefDataset']


def load_json_annotations(ann_file: str) -> Dict:
    """Read a COCO-style JSON file and check its top-level structure."""
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'annotation file {ann_file!r} does not exist')
    try:
        with open(ann_file) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnnotationError(f'{ann_file}: not a valid JSON file ({err})') from err
    if not isinstance(data, dict) or not isinstance(data.get('images'), list) \
            or not isinstance(data.get('annotations'), list):
        raise AnnotationError(f'{ann_file}: expected a JSON object with "images" and "annotations" lists '
                              '(MDETR/COCO format)')
    return data


@DATASETS.register_module()
class MDETRRefExpDataset(SampleSeedingMixin, BaseDetDataset):
    """Referring expressions in MDETR's format (RefCOCO, RefCOCO+, RefCOCOg, SynthRef, ...).

    Every sample is one expression with its referred box(es). ``data_info`` keys: ``img_path``, ``img_id``
    (the expression's id), ``height``, ``width``, ``text``, ``split``, ``original_id`` (the source image's
    id: the entry's ``original_id``, else its ``original_img_id`` as in MDETR's Flickr30k files),
    ``tokens_positive_eval`` (the entry's, or None) and ``instances`` (each with ``bbox`` in x1, y1, x2, y2
    pixels, ``bbox_label`` 0, ``ignore_flag`` 0, ``tokens_positive``, a list of [start, end) character spans
    of ``text``, and ``phrase_ids``, the annotation's or 0).

    Args:
        split (str, optional): Name reported by metrics for this data set (e.g. ``'refcoco_testA'``).
            Defaults to the annotation file's name without ``finetune_`` and ``.json``.
        skip_invalid (bool): If True, invalid expressions are skipped and counted in a warning instead of
            raising: an empty caption, an invalid box (malformed, NaN or infinite, empty or outside the image),
            no box, a missing or unreadable image file, an image of another size than annotated or larger than
            ``max_image_size`` (the image checks need ``check_images``), a referred phrase cut away by the
            text encoder (with ``text_encoder``). Defaults to False: bad input is an error
            (:class:`AnnotationError`, :class:`ImageError` or ``FileNotFoundError``) naming the file and the
            expression id. Malformed files and entries (an entry that is not an object, duplicate ids, spans
            that are not integer pairs inside the caption, an annotation of an unknown image) always raise.
        box_tolerance (float): How many pixels a box may stick out of its image before it is invalid
            (boxes within the tolerance are clipped). Defaults to 1.
        check_images (bool): If True, check at start-up, from the file headers (no decoding), that every image
            file exists, is an image, is no larger than ``max_image_size`` and has the annotated ``height`` and
            ``width``. Defaults to True. Damage past the header (a truncated file) is found when the image is
            loaded: mmvlg's ``LoadImageFromFile`` then raises an :class:`ImageError` naming the file and the
            expression id, and checks the decoded size against the annotation and ``max_image_size``.
        max_image_size (int, optional): Largest allowed image side in pixels (a 10000x8000 image in a
            pipeline without a resize runs the model out of memory). Defaults to 8192; None: no limit.
        text_encoder (dict, optional): The model's text encoder config (``name_or_path`` or ``tokenizer``, and
            ``max_length``, as given to :class:`~mmvlg.models.language_models.HFTextEncoder`; other keys are
            ignored, so ``model.language_model`` can be passed). When given, captions longer than
            ``max_length`` tokens are counted in a warning, and an expression whose referred words
            (``tokens_positive``, ``tokens_positive_eval``) lie past the cut is an error (skipped with
            ``skip_invalid``). Defaults to None: no check.
        **kwargs: Passed to :class:`mmdet.datasets.BaseDetDataset` (``data_root``, ``ann_file``,
            ``data_prefix=dict(img=...)``, ``pipeline``, ``test_mode``, ...).

    Raises:
        AnnotationError: An empty ``images`` list, or no expression left after skipping.
    """

    METAINFO = dict(classes=('object', ), palette=[(220, 20, 60)])
    # Whether an expression without any box is invalid (a referring expression always names one; at test time
    # it could only count as a miss).
    REQUIRE_BOXES = True
    # Optional keys of the ``images`` entries copied into ``data_info`` when present.
    EXTRA_IMAGE_KEYS: Tuple[str, ...] = ()
    # How messages name one ``images`` entry.
    ENTRY_NAME = 'expression'

    def __init__(self, *args, split: Optional[str] = None, skip_invalid: bool = False,
                 box_tolerance: float = 1.0, check_images: bool = True,
                 max_image_size: Optional[int] = DEFAULT_MAX_IMAGE_SIZE, text_encoder: Optional[dict] = None,
                 **kwargs) -> None:
        self.split = split
        self.skip_invalid = skip_invalid
        self.box_tolerance = box_tolerance
        self.check_images = check_images
        self.max_image_size = check_max_image_size(max_image_size, type(self).__name__)
        self.text_encoder = text_encoder
        super().__init__(*args, **kwargs)

    def _invalid(self, msg: str, skipped: List[str]) -> None:
        if not self.skip_invalid:
            raise AnnotationError(msg)
        skipped.append(msg)

    def _where(self, img_id, file_name) -> str:
        return f'{self.ann_file}: {self.ENTRY_NAME} {img_id} ({file_name})'

    def get_data_info(self, idx: int) -> dict:
        """The data info of sample ``idx``, with the expression's name and ``max_image_size`` for the loading
        transform's checks (:func:`~mmvlg.datasets.validation.image_check_info`)."""
        info = super().get_data_info(idx)
        info.update(image_check_info(self._where(info['img_id'], osp.basename(info['img_path'])),
                                     self.max_image_size))
        return info

    def _index_entries(self, data: dict) -> Tuple[Dict, Dict[int, List[dict]]]:
        """The ``images`` entries by id and the ``annotations`` of each, after the structural checks."""
        if not data['images']:
            raise AnnotationError(f'{self.ann_file}: the "images" list is empty: there is no expression to load; '
                                  'check that the annotation file is the right one')
        images: Dict = {}
        for k, img in enumerate(data['images']):
            if not isinstance(img, dict):
                raise AnnotationError(f'{self.ann_file}: images entry {k} is not an object: {img!r}')
            for key in ('id', 'file_name', 'height', 'width', 'caption'):
                if key not in img:
                    raise AnnotationError(f'{self.ann_file}: image entry {img.get("id", "?")} has no "{key}"')
            if not isinstance(img['file_name'], str) or not img['file_name']:
                raise AnnotationError(f'{self.ann_file}: image entry {img["id"]} has no file name: '
                                      f'{img["file_name"]!r}')
            try:
                duplicate = img['id'] in images
            except TypeError as err:
                raise AnnotationError(f'{self.ann_file}: images entry {k} has an id {img["id"]!r} that is not a '
                                      'number or a string') from err
            if duplicate:
                raise AnnotationError(f'{self.ann_file}: image id {img["id"]} appears twice; ids must be unique')
            images[img['id']] = img
        anns_per_image: Dict = {i: [] for i in images}
        ann_ids: set = set()
        for k, ann in enumerate(data['annotations']):
            if not isinstance(ann, dict):
                raise AnnotationError(f'{self.ann_file}: annotations entry {k} is not an object: {ann!r}')
            if 'id' in ann:
                check_unique_id(ann['id'], ann_ids, f'{self.ann_file}: annotation {ann["id"]!r}')
            try:
                known = ann.get('image_id') in images
            except TypeError:
                known = False
            if not known:
                raise AnnotationError(f'{self.ann_file}: annotation {ann.get("id", "?")} references unknown '
                                      f'image id {ann.get("image_id")!r}')
            anns_per_image[ann['image_id']].append(ann)
        return images, anns_per_image

    def _instances(self, where: str, anns: List[dict], caption: str, h: int, w: int, skipped: List[str]
                   ) -> Optional[List[dict]]:
        """The instances of one expression, or None when it is invalid and skipped."""
        instances = []
        for ann in anns:
            ann_where = f'{where}: annotation {ann.get("id")}'
            try:
                x, y, bw, bh = check_box_xywh(ann.get('bbox'), ann_where)
            except AnnotationError as err:
                self._invalid(str(err), skipped)
                return None
            x1, y1, x2, y2 = x, y, x + bw, y + bh
            tol = self.box_tolerance
            if bw <= 0 or bh <= 0 or x1 < -tol or y1 < -tol or x2 > w + tol or y2 > h + tol:
                self._invalid(f'{where}: box {ann["bbox"]} of annotation {ann.get("id")} lies outside the '
                              f'{w}x{h} image or is empty', skipped)
                return None
            spans = check_spans(ann.get('tokens_positive', [[0, len(caption)]]), caption, ann_where)
            instances.append(dict(
                bbox=[max(x1, 0.), max(y1, 0.), min(x2, float(w)), min(y2, float(h))], bbox_label=0,
                ignore_flag=0, tokens_positive=spans, phrase_ids=ann.get('phrase_ids', 0)))
        return instances

    def load_data_list(self) -> List[dict]:
        data = load_json_annotations(self.ann_file)
        if self.split is None:
            name = osp.splitext(osp.basename(self.ann_file))[0]
            self.split = name[len('finetune_'):] if name.startswith('finetune_') else name
        images, anns_per_image = self._index_entries(data)

        img_prefix = self.data_prefix.get('img', '')
        checker = ImageFileChecker(self.max_image_size)
        data_list, skipped = [], []
        for img_id, img in images.items():
            where = self._where(img_id, img['file_name'])
            caption = img['caption']
            if not isinstance(caption, str) or not caption.strip():
                self._invalid(f'{where} has an empty caption', skipped)
                continue
            h, w = check_image_size(img['height'], img['width'], where)
            instances = self._instances(where, anns_per_image[img_id], caption, h, w, skipped)
            if instances is None:
                continue
            if not instances and self.REQUIRE_BOXES:
                self._invalid(f'{where} has no referred box (an annotation with its "image_id"); add the box or '
                              'remove the expression', skipped)
                continue
            img_path = osp.join(img_prefix, img['file_name'])
            if self.check_images:
                problem = checker(img_path, h, w)
                if problem is not None:
                    error, msg = problem
                    if not self.skip_invalid:
                        raise error(f'{where}: {msg}')
                    skipped.append(f'{where}: {msg}')
                    continue
            data_list.append(dict(
                img_path=img_path, img_id=img_id, height=h, width=w, text=caption, split=self.split,
                original_id=img.get('original_id', img.get('original_img_id', img_id)), instances=instances,
                tokens_positive_eval=img.get('tokens_positive_eval'),
                **{k: img[k] for k in self.EXTRA_IMAGE_KEYS if k in img}))
        if self.text_encoder is not None:
            data_list = self._check_text_lengths(data_list, skipped)
        warn_skipped(self.ann_file, skipped, f'{self.ENTRY_NAME}(s)')
        if not data_list:
            raise AnnotationError(f'{self.ann_file}: no {self.ENTRY_NAME} left of {len(images)} '
                                  f'({len(skipped)} skipped as invalid)')
        return data_list

    def _check_text_lengths(self, data_list: List[dict], skipped: List[str]) -> List[dict]:
        """Warn about captions longer than the text encoder's ``max_length``; drop (or raise for) those whose
        referred words lie past the cut."""
        spans = []
        for d in data_list:
            referred = [sp for inst in d['instances'] for sp in inst['tokens_positive']]
            for phrase in d.get('tokens_positive_eval') or []:
                if isinstance(phrase, list):
                    referred += [sp for sp in phrase if isinstance(sp, (list, tuple)) and len(sp) == 2
                                 and all(isinstance(v, int) for v in sp)]
            spans.append(referred)
        max_length, num_truncated, cut = check_text_lengths([d['text'] for d in data_list], spans,
                                                            self.text_encoder)
        warn_truncated(self.ann_file, num_truncated, len(data_list), max_length)
        drop = set()
        for i, span, kept in cut:
            d = data_list[i]
            where = self._where(d['img_id'], osp.basename(d['img_path']))
            self._invalid(cut_span_message(where, d['text'], span, kept, max_length), skipped)
            drop.add(i)
        return [d for i, d in enumerate(data_list) if i not in drop]

    def filter_data(self) -> List[dict]:
        return self.data_list


@DATASETS.register_module()
class RefCOCODataset(MDETRRefExpDataset):
    """RefCOCO (UNC split) in MDETR's format: ``finetune_refcoco_{train,val,testA,testB}.json`` with the
    COCO train2014 images."""


@DATASETS.register_module()
class RefCOCOPlusDataset(MDETRRefExpDataset):
    """RefCOCO+ (UNC split) in MDETR's format: ``finetune_refcoco+_{train,val,testA,testB}.json``."""


@DATASETS.register_module()
class RefCOCOgDataset(MDETRRefExpDataset):
    """RefCOCOg (UMD split) in MDETR's format: ``finetune_refcocog_{train,val,test}.json``."""


# SynthRef's dataset class lives beside its generator; importable from here too (after MDETRRefExpDataset).
from .synthetic.synthref import SynthRefDataset  # noqa: E402
