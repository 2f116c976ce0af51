"""Region-text annotations in X-VLM's format: per image, boxed regions each with its own text, and optionally
whole-image captions (COCO and Visual Genome objects and regions as X-VLM's pre-training reads them).

One entry per image, as JSON lines (one object a line; blank lines allowed) or as one JSON list of the same
objects (chosen by the file's first character)::

    {"image": "vg/1.jpg", "image_id": 1, "height": 600, "width": 800,      # image_id, height, width optional
     "caption": "a man riding a horse",                                     # optional; a str or a list of str
     "elems": [{"caption": "horse", "attributes": "brown",                  # attributes optional (str or list)
                "bb": [x, y, w, h]},                                        # pixels of the original image
               {"caption": ["the man", "a rider"], "bb": [...]}]}

A region's text is its caption with one of its attributes in front (``"brown horse"``); where a field holds a
list, the region sampler (:class:`~mmvlg.datasets.transforms.RegionTextSampler`) draws one per sample. The image
key is ``image`` (``image_key`` renames it); mmvlg reads image files, not the base64 strings of X-VLM's HDFS
shards.

Plain image-text pairs are read by :class:`~mmvlg.datasets.CaptionDataset`; a config mixes both with MMEngine's
``ConcatDataset`` (the samples of this data set have ``data_kind='region_text'``, those of a caption data set
``'image_text'``, carried to the data samples by :class:`~mmvlg.datasets.transforms.PackRegionTextInputs`).
"""
import json
import os.path as osp
from typing import Any, List, Optional, Sequence, Tuple

from mmengine.dataset import BaseDataset

from mmvlg.registry import DATASETS

from .caption import _read_jsonl
from .seeding import SampleSeedingMixin
from .validation import (
    DEFAULT_MAX_IMAGE_SIZE,
    AnnotationError,
    ImageFileChecker,
    check_box_xywh,
    check_image_size,
    check_max_image_size,
    image_check_info,
    warn_skipped,
)

__all__ = ['RegionTextDataset', 'check_region_box', 'text_choices']


def text_choices(value: Any, where: str, name: str, required: bool = True) -> List[str]:
    """The stripped strings of a text field that holds a string or a list of strings.

    Raises:
        AnnotationError: Naming ``where``, for an empty or non-string text (or, with ``required``, a missing or
            empty field).
    """
    if value is None and not required:
        return []
    values = value if isinstance(value, list) else [value]
    if required and not values:
        raise AnnotationError(f'{where} has an empty "{name}" list; give it a text or remove it')
    out = []
    for v in values:
        if not isinstance(v, str) or not v.strip():
            raise AnnotationError(f'{where} has an empty or non-string "{name}" {v!r}; fix the text or remove it')
        out.append(v.strip())
    return out


def check_region_box(box: Any, where: str, size: Optional[Tuple[int, int]] = None, tolerance: float = 1.0
                     ) -> List[float]:
    """A region's ``bb`` (x, y, w, h in pixels) as [x1, y1, x2, y2], clipped to the image.

    Args:
        box: The ``bb`` field.
        where (str): The file and the entry, for the message.
        size (tuple, optional): (height, width) of the image; None: not checked against the image.
        tolerance (float): How many pixels a box may reach past the image border (rounding in the files) before
            it is an error; within it, the box is clipped.

    Raises:
        AnnotationError: For a box that is not 4 finite numbers, of zero (or negative) width or height, or that
            lies outside the image by more than ``tolerance`` pixels.
    """
    x, y, w, h = check_box_xywh(box, where)
    if w <= 0 or h <= 0:
        raise AnnotationError(f'{where} has a box "bb" {list(box)!r} of zero area (width {w:g}, height {h:g}); '
                              'fix the box or remove the region')
    x1, y1, x2, y2 = x, y, x + w, y + h
    if size is not None:
        img_h, img_w = size
        if x1 < -tolerance or y1 < -tolerance or x2 > img_w + tolerance or y2 > img_h + tolerance:
            raise AnnotationError(f'{where} has a box "bb" {list(box)!r} (x1, y1, x2, y2 = {x1:g}, {y1:g}, {x2:g}, '
                                  f'{y2:g}) outside the {img_w}x{img_h} image; fix the box or remove the region')
        x1, y1, x2, y2 = max(x1, 0.), max(y1, 0.), min(x2, float(img_w)), min(y2, float(img_h))
        if x2 <= x1 or y2 <= y1:
            raise AnnotationError(f'{where} has a box "bb" {list(box)!r} with no area inside the {img_w}x{img_h} '
                                  'image; fix the box or remove the region')
    return [x1, y1, x2, y2]


def _image_size(path: str) -> Optional[Tuple[int, int]]:
    """(height, width) from the image file's header; None when it cannot be read (the file check reports it)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:
        return None
    return h, w


@DATASETS.register_module()
class RegionTextDataset(SampleSeedingMixin, BaseDataset):
    """X-VLM's region-text annotations (see the module doc for the format); one sample per image.

    ``data_info`` keys: ``img_path``; ``img_id`` (the entry's ``image_id``, else its image path); ``text_id``
    (the entry's index in the file); ``split``; ``data_kind = 'region_text'``; ``captions`` (list[str], the
    image-level captions, may be empty); ``text`` (the first of them, ``''`` when there is none; the region
    sampler draws one); ``regions``: one dict per element, ``bbox`` [x1, y1, x2, y2] in pixels of the original
    image, ``captions`` (list[str], non-empty) and ``attributes`` (list[str], may be empty); ``height`` and
    ``width`` when the entry gives them.

    Checks at start-up (every message names the file, the line or entry, the image id and the element): a box
    that is not 4 finite numbers, of zero area, or outside the image (the size from the entry's
    ``height``/``width``, else from the image file's header when ``check_images``; else the region sampler checks
    against the loaded image), an empty or non-string caption or attribute, an entry without image, an image
    with no region and no caption.

    Args:
        image_key (str): The key of the image path in the entries. Defaults to ``'image'``.
        split (str, optional): Name of the split (default: the annotation file's name).
        skip_invalid (bool): Instead of raising, skip an invalid element (bad box, empty caption), and an image
            whose file is missing or unreadable or that has no valid element and no caption, counted in a
            warning. Malformed files and entries (not an object, no image, not valid JSON) are always errors.
            Defaults to False.
        box_tolerance (float): Pixels a box may reach past the image border before it is invalid (it is
            clipped). Defaults to 1.
        check_images (bool): Check at start-up that every image file exists and is an image of the entry's size
            (when given) and at most ``max_image_size``. Defaults to True.
        max_image_size (int, optional): Largest allowed image side. Defaults to 8192.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset` (``data_root``, ``ann_file``,
            ``data_prefix=dict(img=...)``, ``pipeline``, ...).
    """

    # the same task as CaptionDataset's, so that ConcatDataset mixes the two without ignore_keys
    METAINFO = dict(task='image-text pairs')

    def __init__(self, *args, image_key: str = 'image', split: Optional[str] = None, skip_invalid: bool = False,
                 box_tolerance: float = 1.0, check_images: bool = True,
                 max_image_size: Optional[int] = DEFAULT_MAX_IMAGE_SIZE, **kwargs) -> None:
        if not (isinstance(box_tolerance, (int, float)) and box_tolerance >= 0):
            raise ValueError(f'RegionTextDataset: box_tolerance must be a number >= 0, got {box_tolerance!r}')
        self.image_key = image_key
        self.split = split
        self.skip_invalid = skip_invalid
        self.box_tolerance = float(box_tolerance)
        self.check_images = check_images
        self.max_image_size = check_max_image_size(max_image_size, type(self).__name__)
        self.num_skipped = 0
        kwargs.setdefault('data_prefix', dict(img=''))
        super().__init__(*args, **kwargs)

    def get_data_info(self, idx: int) -> dict:
        """The data info of sample ``idx``, with the entry's name and ``max_image_size`` for the load-time checks
        (of the image and, by the region sampler, of the boxes)."""
        info = super().get_data_info(idx)
        info.update(image_check_info(f'{info["where"]} (image {info["img_id"]!r})', self.max_image_size))
        return info

    def _entries(self) -> List[Tuple[str, Any]]:
        with open(self.ann_file, encoding='utf-8') as f:
            head = f.read(4096).lstrip()
        if head.startswith('['):
            try:
                with open(self.ann_file, encoding='utf-8') as f:
                    data = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise AnnotationError(f'{self.ann_file}: not a valid JSON file ({err})') from err
            return [(f'{self.ann_file}, entry {k}', e) for k, e in enumerate(data)]
        return [(f'{self.ann_file}, line {n}', e) for n, e in _read_jsonl(self.ann_file)]

    def _regions(self, elems: Sequence[Any], where: str, size: Optional[Tuple[int, int]], skipped: List[str]
                 ) -> List[dict]:
        regions = []
        for k, elem in enumerate(elems):
            at = f'{where}, elem {k}'
            if not isinstance(elem, dict):
                raise AnnotationError(f'{at} is not an object with "caption" and "bb": {elem!r}')
            try:
                if 'caption' not in elem:
                    raise AnnotationError(f'{at} has no "caption"')
                captions = text_choices(elem['caption'], at, 'caption')
                attributes = text_choices(elem.get('attributes'), at, 'attributes', required=False)
                bbox = check_region_box(elem.get('bb'), at, size, self.box_tolerance)
            except AnnotationError as err:
                if not self.skip_invalid:
                    raise
                skipped.append(str(err))
                continue
            regions.append(dict(bbox=bbox, captions=captions, attributes=attributes))
        return regions

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'annotation file {self.ann_file!r} does not exist')
        if self.split is None:
            self.split = osp.splitext(osp.basename(self.ann_file))[0]
        img_prefix = self.data_prefix.get('img', '')
        checker = ImageFileChecker(self.max_image_size)
        data_list, skipped = [], []
        for index, (where, entry) in enumerate(self._entries()):
            if not isinstance(entry, dict) or not isinstance(entry.get(self.image_key), str) \
                    or not entry[self.image_key]:
                raise AnnotationError(f'{where}: expected an object with an "{self.image_key}" path and "elems", '
                                      f'got {entry!r}')
            img_id = entry.get('image_id', entry[self.image_key])
            named = f'{where} (image {img_id!r})'
            elems = entry.get('elems', [])
            if not isinstance(elems, list):
                raise AnnotationError(f'{named}: "elems" must be a list of regions, got {elems!r}')
            img_path = osp.join(img_prefix, entry[self.image_key])
            size = None
            if entry.get('height') is not None and entry.get('width') is not None:
                size = check_image_size(entry['height'], entry['width'], named)
            if self.check_images:
                problem = checker(img_path, *(size or (None, None)))
                if problem is not None:
                    error, msg = problem
                    if not self.skip_invalid:
                        raise error(f'{named}: {msg}')
                    skipped.append(f'{named}: {msg}')
                    continue
                box_size = size or _image_size(img_path)
            else:
                box_size = size
            try:
                captions = text_choices(entry.get('caption'), named, 'caption', required=False)
            except AnnotationError as err:
                if not self.skip_invalid:
                    raise
                skipped.append(str(err))
                captions = []
            regions = self._regions(elems, named, box_size, skipped)
            if not regions and not captions:
                msg = f'{named} has no valid region and no caption: nothing to learn from'
                if not self.skip_invalid:
                    raise AnnotationError(msg + '; add regions or remove the entry')
                skipped.append(msg)
                continue
            info = dict(img_path=img_path, img_id=img_id, text_id=index, split=self.split, data_kind='region_text',
                        captions=captions, text=captions[0] if captions else '', regions=regions, where=where)
            if size is not None:
                info.update(height=size[0], width=size[1])
            data_list.append(info)
        self.num_skipped = len(skipped)
        warn_skipped(self.ann_file, skipped, 'region(s) or image(s)')
        if not data_list:
            raise AnnotationError(f'{self.ann_file}: no image with regions or captions')
        return data_list
