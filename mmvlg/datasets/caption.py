"""Image-text pairs for coarse-grained vision-language pre-training and retrieval (COCO Captions, Conceptual
Captions, SBU, Visual Genome captions, ...).

Three annotation formats are read, chosen by ``ann_format`` (``'auto'``: by the file's extension and content):

* ``'coco'``: a COCO-captions JSON object ``{"images": [{"id", "file_name", ...}], "annotations": [{"id",
  "image_id", "caption"}]}`` (``captions_train2017.json``, the Karpathy-split files converted to it, ...);
* ``'jsonl'``: JSON lines, one web pair per line, ``{"image": "relative/path.jpg", "caption": "..."}``
  (``caption`` may also be a list of captions; an optional ``image_id`` names the image, else its path does);
  blank lines are allowed;
* ``'list'``: a JSON list of the same objects as the JSON-lines format (ALBEF/BLIP-style files).

Every sample is one (image, caption) pair; an image with five captions gives five samples that share
``img_id``, which is what image-text retrieval groups by.
"""
import json
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

from mmengine.dataset import BaseDataset

from mmvlg.registry import DATASETS

from .seeding import SampleSeedingMixin
from .validation import (
    DEFAULT_MAX_IMAGE_SIZE,
    AnnotationError,
    ImageFileChecker,
    check_image_size,
    check_max_image_size,
    check_text_lengths,
    check_unique_id,
    image_check_info,
    warn_skipped,
    warn_truncated,
)

ANN_FORMATS = ('auto', 'coco', 'jsonl', 'list')


def _read_jsonl(ann_file: str) -> List[Tuple[int, Any]]:
    """(line number, parsed object) of every non-blank line; an unparsable line is an error naming it."""
    entries = []
    with open(ann_file, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entries.append((lineno, json.loads(line)))
            except json.JSONDecodeError as err:
                raise AnnotationError(f'{ann_file}, line {lineno}: not valid JSON ({err.msg})') from err
    return entries


@DATASETS.register_module()
class CaptionDataset(SampleSeedingMixin, BaseDataset):
    """Image-caption pairs (see the module doc for the formats).

    ``data_info`` keys: ``img_path``, ``img_id`` (the COCO image id, the JSON-lines ``image_id`` or the image's
    relative path), ``text`` (the caption, stripped), ``text_id`` (the COCO annotation id, else the pair's
    index in the file), ``split`` and, when the annotation gives them, ``height`` and ``width``.

    Args:
        ann_format (str): ``'auto'``, ``'coco'``, ``'jsonl'`` or ``'list'``. Defaults to ``'auto'``:
            ``.jsonl`` files are JSON lines, a ``.json`` file holding an object is COCO, a list is ``'list'``.
        split (str, optional): Name reported by metrics (default: the annotation file's name).
        skip_invalid (bool): Skip pairs with an empty or non-string caption, and (with ``check_images``) pairs
            whose image file is missing, unreadable, larger than ``max_image_size`` or of another size than the
            entry's ``height``/``width``, counted in a warning, instead of raising. Malformed files, entries that
            are not objects or have no image, duplicate annotation ids, unknown image ids and an empty file are
            always errors (:class:`~mmvlg.datasets.AnnotationError` naming the file and the entry).
        check_images (bool): Check at start-up, from the file headers, that every image file exists, is an image,
            is no larger than ``max_image_size`` and has the entry's ``height`` and ``width`` when given.
            Defaults to True. mmvlg's ``LoadImageFromFile`` checks the decoded image again at load time and
            names the file and the caption in its errors.
        max_image_size (int, optional): Largest allowed image side in pixels. Defaults to 8192; None: no limit.
        text_encoder (dict, optional): The model's text encoder config (``name_or_path`` or ``tokenizer``, and
            ``max_length``); when given, captions longer than ``max_length`` tokens are counted in a warning.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset` (``data_root``, ``ann_file``,
            ``data_prefix=dict(img=...)``, ``pipeline``, ``test_mode``, ...).
    """

    METAINFO = dict(task='image-text pairs')

    def __init__(self, *args, ann_format: str = 'auto', split: Optional[str] = None, skip_invalid: bool = False,
                 check_images: bool = True, max_image_size: Optional[int] = DEFAULT_MAX_IMAGE_SIZE,
                 text_encoder: Optional[dict] = None, **kwargs) -> None:
        if ann_format not in ANN_FORMATS:
            raise ValueError(f'CaptionDataset: ann_format must be one of {ANN_FORMATS}, got {ann_format!r}')
        self.ann_format = ann_format
        self.split = split
        self.skip_invalid = skip_invalid
        self.check_images = check_images
        self.max_image_size = check_max_image_size(max_image_size, type(self).__name__)
        self.text_encoder = text_encoder
        kwargs.setdefault('data_prefix', dict(img=''))
        super().__init__(*args, **kwargs)

    def get_data_info(self, idx: int) -> dict:
        """The data info of sample ``idx``, with the caption's name and ``max_image_size`` for the loading
        transform's checks."""
        info = super().get_data_info(idx)
        info.update(image_check_info(f'{self.ann_file}: caption {info["text_id"]} (image {info["img_id"]!r})',
                                     self.max_image_size))
        return info

    # ------------------------------------------------------------------------------------------ reading
    def _format(self) -> str:
        if self.ann_format != 'auto':
            return self.ann_format
        if self.ann_file.endswith('.jsonl'):
            return 'jsonl'
        with open(self.ann_file, encoding='utf-8') as f:
            head = f.read(4096).lstrip()
        return 'list' if head.startswith('[') else 'coco'

    def _load_json(self) -> Any:
        try:
            with open(self.ann_file, encoding='utf-8') as f:
                return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise AnnotationError(f'{self.ann_file}: not a valid JSON file ({err})') from err

    def _pairs_coco(self) -> List[Dict]:
        data = self._load_json()
        if not isinstance(data, dict) or not isinstance(data.get('images'), list) \
                or not isinstance(data.get('annotations'), list):
            raise AnnotationError(f'{self.ann_file}: expected a JSON object with "images" and "annotations" lists '
                                  '(COCO captions format)')
        if not data['images']:
            raise AnnotationError(f'{self.ann_file}: the "images" list is empty: there is no image-caption pair')
        images: Dict[Any, dict] = {}
        for k, img in enumerate(data['images']):
            if not isinstance(img, dict) or 'id' not in img or 'file_name' not in img:
                raise AnnotationError(f'{self.ann_file}: image entry {k} needs "id" and "file_name", got {img!r}')
            if img['id'] in images:
                raise AnnotationError(f'{self.ann_file}: image id {img["id"]} appears twice')
            images[img['id']] = img
        pairs, ann_ids = [], set()
        for k, ann in enumerate(data['annotations']):
            ann_id = ann.get('id', k) if isinstance(ann, dict) else k
            where = f'{self.ann_file}: annotation {ann_id}'
            if not isinstance(ann, dict):
                raise AnnotationError(f'{self.ann_file}: annotations entry {k} is not an object: {ann!r}')
            if 'id' in ann:
                check_unique_id(ann['id'], ann_ids, where)
            try:
                known = ann.get('image_id') in images
            except TypeError:
                known = False
            if not known:
                raise AnnotationError(f'{where} references unknown image id {ann.get("image_id")!r}')
            img = images[ann['image_id']]
            pairs.append(dict(where=where, image=img['file_name'], img_id=img['id'], caption=ann.get('caption'),
                              text_id=ann_id, height=img.get('height'), width=img.get('width')))
        return pairs

    def _pairs_web(self, entries: List[Tuple[str, Any]]) -> List[Dict]:
        pairs = []
        for where, entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get('image'), str) or not entry['image']:
                raise AnnotationError(f'{where}: expected an object with an "image" path and a "caption", '
                                      f'got {entry!r}')
            if 'caption' not in entry:
                raise AnnotationError(f'{where}: no "caption"')
            captions = entry['caption'] if isinstance(entry['caption'], list) else [entry['caption']]
            if not captions:
                raise AnnotationError(f'{where}: "caption" is an empty list')
            for caption in captions:
                pairs.append(dict(where=where, image=entry['image'], img_id=entry.get('image_id', entry['image']),
                                  caption=caption, text_id=len(pairs), height=entry.get('height'),
                                  width=entry.get('width')))
        return pairs

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'annotation file {self.ann_file!r} does not exist')
        if self.split is None:
            self.split = osp.splitext(osp.basename(self.ann_file))[0]
        fmt = self._format()
        if fmt == 'coco':
            pairs = self._pairs_coco()
        elif fmt == 'jsonl':
            pairs = self._pairs_web([(f'{self.ann_file}, line {n}', e) for n, e in _read_jsonl(self.ann_file)])
        else:
            data = self._load_json()
            if not isinstance(data, list):
                raise AnnotationError(f'{self.ann_file}: expected a JSON list of {{"image", "caption"}} objects')
            pairs = self._pairs_web([(f'{self.ann_file}, entry {k}', e) for k, e in enumerate(data)])

        img_prefix = self.data_prefix.get('img', '')
        checker = ImageFileChecker(self.max_image_size)
        data_list, skipped = [], []
        for p in pairs:
            caption = p['caption']
            if not isinstance(caption, str) or not caption.strip():
                msg = f'{p["where"]} ({p["image"]}) has an empty or non-string caption {caption!r}'
                if not self.skip_invalid:
                    raise AnnotationError(msg)
                skipped.append(msg)
                continue
            img_path = osp.join(img_prefix, p['image'])
            size = None
            if p['height'] is not None and p['width'] is not None:
                size = check_image_size(p['height'], p['width'], f'{p["where"]} ({p["image"]})')
            if self.check_images:
                problem = checker(img_path, *(size or (None, None)))
                if problem is not None:
                    error, msg = problem
                    if not self.skip_invalid:
                        raise error(f'{p["where"]}: {msg}')
                    skipped.append(f'{p["where"]}: {msg}')
                    continue
            info = dict(img_path=img_path, img_id=p['img_id'], text=caption.strip(), text_id=p['text_id'],
                        split=self.split)
            if size is not None:
                info.update(height=size[0], width=size[1])
            data_list.append(info)
        warn_skipped(self.ann_file, skipped, 'caption(s)')
        if not data_list:
            raise AnnotationError(f'{self.ann_file}: no image-caption pair')
        if self.text_encoder is not None:
            max_length, num_truncated, _ = check_text_lengths([d['text'] for d in data_list],
                                                              [[] for _ in data_list], self.text_encoder)
            warn_truncated(self.ann_file, num_truncated, len(data_list), max_length)
        return data_list
