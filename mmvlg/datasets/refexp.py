"""Referring-expression data sets in MDETR's annotation format.

MDETR's files (``finetune_refcoco_train.json``, ``finetune_refcoco+_testA.json``, ...) are COCO-style: one
``images`` entry *per expression* (``id``, ``file_name``, ``height``, ``width``, ``caption``, ``original_id``
of the COCO image, ...) and one ``annotations`` entry with the referred box (``bbox`` as x, y, w, h and
``tokens_positive``, the character spans of the caption that name the object).
"""
import json
import os.path as osp
import warnings
from typing import Dict, List, Optional, Tuple

from mmdet.datasets import BaseDetDataset

from mmvlg.registry import DATASETS


class AnnotationError(ValueError):
    """An annotation file, or one entry of it, is malformed. The message names the file and the entry."""


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
class MDETRRefExpDataset(BaseDetDataset):
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
        skip_invalid (bool): If True, expressions with an empty caption or an invalid box are skipped and
            counted in a warning instead of raising. Defaults to False: bad input is an error.
        box_tolerance (float): How many pixels a box may stick out of its image before it is invalid
            (boxes within the tolerance are clipped). Defaults to 1.
        check_images (bool): If True, check at start-up that every image file exists. Defaults to True.
        **kwargs: Passed to :class:`mmdet.datasets.BaseDetDataset` (``data_root``, ``ann_file``,
            ``data_prefix=dict(img=...)``, ``pipeline``, ``test_mode``, ...).
    """

    METAINFO = dict(classes=('object', ), palette=[(220, 20, 60)])
    # Whether a training expression without any box is invalid (a referring expression always names one).
    REQUIRE_BOXES = True
    # Optional keys of the ``images`` entries copied into ``data_info`` when present.
    EXTRA_IMAGE_KEYS: Tuple[str, ...] = ()

    def __init__(self, *args, split: Optional[str] = None, skip_invalid: bool = False,
                 box_tolerance: float = 1.0, check_images: bool = True, **kwargs) -> None:
        self.split = split
        self.skip_invalid = skip_invalid
        self.box_tolerance = box_tolerance
        self.check_images = check_images
        super().__init__(*args, **kwargs)

    def _invalid(self, msg: str, skipped: List[str]) -> None:
        if not self.skip_invalid:
            raise AnnotationError(msg)
        skipped.append(msg)

    def load_data_list(self) -> List[dict]:
        data = load_json_annotations(self.ann_file)
        if self.split is None:
            name = osp.splitext(osp.basename(self.ann_file))[0]
            self.split = name[len('finetune_'):] if name.startswith('finetune_') else name
        images = {}
        for img in data['images']:
            for key in ('id', 'file_name', 'height', 'width', 'caption'):
                if key not in img:
                    raise AnnotationError(f'{self.ann_file}: image entry {img.get("id", "?")} has no "{key}"')
            if img['id'] in images:
                raise AnnotationError(f'{self.ann_file}: image id {img["id"]} appears twice')
            images[img['id']] = img
        anns_per_image: Dict[int, List[dict]] = {i: [] for i in images}
        for ann in data['annotations']:
            if ann.get('image_id') not in images:
                raise AnnotationError(f'{self.ann_file}: annotation {ann.get("id", "?")} references unknown '
                                      f'image id {ann.get("image_id")!r}')
            anns_per_image[ann['image_id']].append(ann)

        img_prefix = self.data_prefix.get('img', '')
        data_list, skipped = [], []
        for img_id, img in images.items():
            where = f'{self.ann_file}: expression {img_id} ({img["file_name"]})'
            caption = img['caption']
            if not isinstance(caption, str) or not caption.strip():
                self._invalid(f'{where} has an empty caption', skipped)
                continue
            try:  # MDETR's Flickr30k files store the size as strings ("500")
                h, w = int(img['height']), int(img['width'])
            except (TypeError, ValueError) as err:
                raise AnnotationError(f'{where} has a non-integer image size {img["width"]!r}x{img["height"]!r}'
                                      ) from err
            if not (h > 0 and w > 0):
                raise AnnotationError(f'{where} has a non-positive image size {w}x{h}')
            instances, bad = [], False
            for ann in anns_per_image[img_id]:
                box = ann.get('bbox')
                if not isinstance(box, (list, tuple)) or len(box) != 4:
                    raise AnnotationError(f'{where}: annotation {ann.get("id")} has no 4-number "bbox"')
                x, y, bw, bh = (float(v) for v in box)
                x1, y1, x2, y2 = x, y, x + bw, y + bh
                tol = self.box_tolerance
                if bw <= 0 or bh <= 0 or x1 < -tol or y1 < -tol or x2 > w + tol or y2 > h + tol:
                    self._invalid(f'{where}: box {box} of annotation {ann.get("id")} lies outside the '
                                  f'{w}x{h} image or is empty', skipped)
                    bad = True
                    break
                spans = ann.get('tokens_positive', [[0, len(caption)]])
                if not isinstance(spans, (list, tuple)) or not all(
                        isinstance(sp, (list, tuple)) and len(sp) == 2 for sp in spans):
                    raise AnnotationError(f'{where}: tokens_positive of annotation {ann.get("id")} must be a list of '
                                          f'[start, end] spans, got {spans!r}')
                for s, e in spans:
                    if not 0 <= s < e <= len(caption):
                        raise AnnotationError(f'{where}: tokens_positive span {[s, e]} of annotation '
                                              f'{ann.get("id")} is outside the caption {caption!r}')
                instances.append(dict(
                    bbox=[max(x1, 0.), max(y1, 0.), min(x2, float(w)), min(y2, float(h))], bbox_label=0,
                    ignore_flag=0, tokens_positive=[list(sp) for sp in spans],
                    phrase_ids=ann.get('phrase_ids', 0)))
            if bad:
                continue
            if not instances and self.REQUIRE_BOXES and not self.test_mode:
                self._invalid(f'{where} has no referred box', skipped)
                continue
            img_path = osp.join(img_prefix, img['file_name'])
            if self.check_images and not osp.isfile(img_path):
                raise FileNotFoundError(f'{where}: image file {img_path!r} does not exist')
            data_list.append(dict(
                img_path=img_path, img_id=img_id, height=h, width=w, text=caption, split=self.split,
                original_id=img.get('original_id', img.get('original_img_id', img_id)), instances=instances,
                tokens_positive_eval=img.get('tokens_positive_eval'),
                **{k: img[k] for k in self.EXTRA_IMAGE_KEYS if k in img}))
        if skipped:
            warnings.warn(f'{self.ann_file}: skipped {len(skipped)} invalid expression(s) '
                          f'(skip_invalid=True); first: {skipped[0]}')
        return data_list

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


@DATASETS.register_module()
class SynthRefDataset(MDETRRefExpDataset):
    """SynthRef (see :mod:`mmvlg.datasets.synthref`), generated on first use.

    Args:
        generate (dict, optional): Arguments of :class:`~mmvlg.datasets.synthref.SynthRefConfig`. When
            given, the data set is generated under ``data_root`` unless an identical copy is already there
            (in distributed runs, rank 0 generates and the other ranks wait). Defaults to None (the files
            must exist).
        fraction (float): Keep only this fraction of the expressions (a deterministic subset of whole
            scenes), for small-data studies. Defaults to 1.
    """

    def __init__(self, *args, generate: Optional[dict] = None, fraction: float = 1.0, **kwargs) -> None:
        if generate is not None:
            from mmengine.dist import barrier, get_rank

            from .synthref import SynthRefConfig, generate_synthref
            if get_rank() == 0:
                generate_synthref(kwargs['data_root'], SynthRefConfig(**generate))
            barrier()
        if not 0 < fraction <= 1:
            raise ValueError(f'SynthRefDataset: fraction must be in (0, 1], got {fraction}')
        self.fraction = fraction
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        if self.fraction < 1:
            scenes = sorted({d['original_id'] for d in data_list})
            keep = set(scenes[:max(1, round(len(scenes) * self.fraction))])
            data_list = [d for d in data_list if d['original_id'] in keep]
        return data_list
