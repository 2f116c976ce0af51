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
import warnings
from typing import Any, Dict, List, Optional, Tuple

from mmengine.dataset import BaseDataset

from mmvlg.registry import DATASETS

from .refexp import AnnotationError

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
class CaptionDataset(BaseDataset):
    """Image-caption pairs (see the module doc for the formats).

    ``data_info`` keys: ``img_path``, ``img_id`` (the COCO image id, the JSON-lines ``image_id`` or the image's
    relative path), ``text`` (the caption, stripped), ``text_id`` (the COCO annotation id, else the pair's
    index in the file), ``split`` and, when the annotation gives them, ``height`` and ``width``.

    Args:
        ann_format (str): ``'auto'``, ``'coco'``, ``'jsonl'`` or ``'list'``. Defaults to ``'auto'``:
            ``.jsonl`` files are JSON lines, a ``.json`` file holding an object is COCO, a list is ``'list'``.
        split (str, optional): Name reported by metrics (default: the annotation file's name).
        skip_invalid (bool): Skip pairs with an empty or non-string caption (counted in a warning) instead of
            raising. Malformed files, entries without an image and unknown image ids are always errors.
        check_images (bool): Check at start-up that every image file exists. Defaults to True.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset` (``data_root``, ``ann_file``,
            ``data_prefix=dict(img=...)``, ``pipeline``, ``test_mode``, ...).
    """

    METAINFO = dict(task='image-text pairs')

    def __init__(self, *args, ann_format: str = 'auto', split: Optional[str] = None, skip_invalid: bool = False,
                 check_images: bool = True, **kwargs) -> None:
        if ann_format not in ANN_FORMATS:
            raise ValueError(f'CaptionDataset: ann_format must be one of {ANN_FORMATS}, got {ann_format!r}')
        self.ann_format = ann_format
        self.split = split
        self.skip_invalid = skip_invalid
        self.check_images = check_images
        kwargs.setdefault('data_prefix', dict(img=''))
        super().__init__(*args, **kwargs)

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
        images: Dict[Any, dict] = {}
        for k, img in enumerate(data['images']):
            if not isinstance(img, dict) or 'id' not in img or 'file_name' not in img:
                raise AnnotationError(f'{self.ann_file}: image entry {k} needs "id" and "file_name", got {img!r}')
            if img['id'] in images:
                raise AnnotationError(f'{self.ann_file}: image id {img["id"]} appears twice')
            images[img['id']] = img
        pairs = []
        for k, ann in enumerate(data['annotations']):
            ann_id = ann.get('id', k) if isinstance(ann, dict) else k
            where = f'{self.ann_file}: annotation {ann_id}'
            if not isinstance(ann, dict) or ann.get('image_id') not in images:
                raise AnnotationError(f'{where} references unknown image id '
                                      f'{ann.get("image_id") if isinstance(ann, dict) else None!r}')
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
        data_list, skipped, checked = [], [], set()
        for p in pairs:
            caption = p['caption']
            if not isinstance(caption, str) or not caption.strip():
                msg = f'{p["where"]} ({p["image"]}) has an empty or non-string caption {caption!r}'
                if not self.skip_invalid:
                    raise AnnotationError(msg)
                skipped.append(msg)
                continue
            img_path = osp.join(img_prefix, p['image'])
            if self.check_images and img_path not in checked:
                if not osp.isfile(img_path):
                    raise FileNotFoundError(f'{p["where"]}: image file {img_path!r} does not exist')
                checked.add(img_path)
            info = dict(img_path=img_path, img_id=p['img_id'], text=caption.strip(), text_id=p['text_id'],
                        split=self.split)
            if p['height'] is not None and p['width'] is not None:
                info.update(height=int(p['height']), width=int(p['width']))
            data_list.append(info)
        if skipped:
            warnings.warn(f'{self.ann_file}: skipped {len(skipped)} invalid caption(s) (skip_invalid=True); '
                          f'first: {skipped[0]}')
        if not data_list:
            raise AnnotationError(f'{self.ann_file}: no image-caption pair')
        return data_list
