"""NLVR2: a statement about a pair of images, true or false (Suhr et al., 2019), and its two-image pipeline.

Two annotation layouts are read, per entry:

* the official NLVR2 JSON lines (``train.json``, ``dev.json``, ``test1.json``): ``{"identifier":
  "train-10171-0-0", "sentence": "...", "label": "True", "directory": 12, ...}``; the images are
  ``{directory}/{split}-{set}-{pair}-img0.png`` and ``-img1.png`` under the image folder (``directory`` only in
  the training split), the identifier without its last part naming the pair;
* X-VLM's JSON list (``nlvr_train.json``): ``{"images": ["path/img0.png", "path/img1.png"], "sentence": "...",
  "label": "True"}`` (an optional ``identifier`` names the statement, else its index does).

``label`` may be ``"True"``/``"False"``, a bool or 0/1.

How the two images travel (the shapes the NLVR2 model reads):

* :class:`ApplyToImagePair` runs its ``transforms`` (loading, resizing, ...) on each image of the pair
  separately and :class:`PackNLVR2Inputs` packs the pair into ``inputs`` = [image 0, image 1], two uint8 (3, H, W)
  tensors, and ``data_samples`` = two :class:`~mmdet.structures.DetDataSample`, one per image, with the same
  metainfo ``text`` (the statement), ``label`` (int 1 true / 0 false), ``img_id`` (the statement's id) and
  ``image_index`` (0 for the left image, 1 for the right one), besides each image's ``img_path``, ``img_shape``,
  ``ori_shape``, ``scale_factor``, ``flip``;
* :func:`nlvr2_collate` (the data loaders' ``collate_fn=dict(type='nlvr2_collate')``) flattens a batch of B
  statements into 2B consecutive samples: ``inputs`` a list of 2B tensors and ``data_samples`` a list of 2B data
  samples, where samples ``2i`` and ``2i + 1`` are the left and right images of statement ``i``. mmdet's
  ``DetDataPreprocessor`` then normalizes and pads them as any batch: the model gets ``inputs`` (2B, 3, H, W)
  and views its image features as (B, 2, ...); the label and the statement are those of the even samples.
"""
import json
import os.path as osp
from typing import Any, List, Optional, Sequence

from mmcv.transforms import BaseTransform, Compose
from mmdet.datasets.transforms import PackDetInputs
from mmengine.dataset import BaseDataset
from mmengine.registry import FUNCTIONS

from mmvlg.registry import DATASETS, TRANSFORMS

from .caption import _read_jsonl
from .seeding import SampleSeedingMixin
from .transforms.formatting import positive_strides
from .validation import (
    DEFAULT_MAX_IMAGE_SIZE,
    IMAGE_CHECK_KEY,
    AnnotationError,
    ImageFileChecker,
    check_max_image_size,
    image_check_info,
    sample_where,
    warn_skipped,
)

__all__ = ['NLVR2Dataset', 'parse_label', 'ApplyToImagePair', 'PackNLVR2Inputs', 'NLVR2_META_KEYS',
           'nlvr2_collate']

NLVR2_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction', 'text',
                   'label', 'text_id', 'split', 'image_index', 'template')
_LABELS = {'true': 1, 'false': 0}


def parse_label(value: Any, where: str) -> int:
    """1 for ``"True"``/``True``/1, 0 for ``"False"``/``False``/0; an :class:`AnnotationError` naming ``where``
    otherwise."""
    if isinstance(value, str) and value.strip().lower() in _LABELS:
        return _LABELS[value.strip().lower()]
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return int(value)
    raise AnnotationError(f'{where} has the label {value!r}; expected "True" or "False" (or a bool, 0 or 1)')


@DATASETS.register_module()
class NLVR2Dataset(SampleSeedingMixin, BaseDataset):
    """NLVR2 statements with their image pairs (see the module doc for the layouts and the packing).

    ``data_info`` keys: ``img_paths`` (the two image paths, left first), ``img_path`` (the left one), ``img_id``
    (the statement's identifier, else its index in the file), ``text`` (the statement, stripped), ``label`` (int),
    ``text_id`` (the index), ``split`` and, when the entry has one, ``template`` (SynthRef NLVR2).

    Args:
        split (str, optional): Name of the split (default: the annotation file's name).
        skip_invalid (bool): Skip statements with an empty sentence or (with ``check_images``) a missing or
            unreadable image, counted in a warning, instead of raising. A statement without its second image in
            X-VLM's layout, an unknown label, a malformed identifier or file are always errors
            (:class:`~mmvlg.datasets.AnnotationError` naming the file and the statement).
        check_images (bool): Check at start-up that both image files of every statement exist and are images of at
            most ``max_image_size``. Defaults to True.
        max_image_size (int, optional): Largest allowed image side. Defaults to 8192.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset` (``data_root``, ``ann_file``,
            ``data_prefix=dict(img=...)``, ``pipeline``, ...).
    """

    METAINFO = dict(task='nlvr2', classes=('False', 'True'))

    def __init__(self, *args, split: Optional[str] = None, skip_invalid: bool = False, check_images: bool = True,
                 max_image_size: Optional[int] = DEFAULT_MAX_IMAGE_SIZE, **kwargs) -> None:
        self.split = split
        self.skip_invalid = skip_invalid
        self.check_images = check_images
        self.max_image_size = check_max_image_size(max_image_size, type(self).__name__)
        kwargs.setdefault('data_prefix', dict(img=''))
        super().__init__(*args, **kwargs)

    def get_data_info(self, idx: int) -> dict:
        """The data info of sample ``idx``, with the statement's name and ``max_image_size`` for the load-time
        checks (:class:`ApplyToImagePair` adds which image)."""
        info = super().get_data_info(idx)
        info.update(image_check_info(f'{self.ann_file}: statement {info["img_id"]!r}', self.max_image_size))
        return info

    def _entries(self) -> List[tuple]:
        with open(self.ann_file, encoding='utf-8') as f:
            head = f.read(4096).lstrip()
        if head.startswith('['):
            try:
                with open(self.ann_file, encoding='utf-8') as f:
                    data = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise AnnotationError(f'{self.ann_file}: not a valid JSON file ({err})') from err
            return [(f'entry {k}', e) for k, e in enumerate(data)]
        return [(f'line {n}', e) for n, e in _read_jsonl(self.ann_file)]

    def _image_paths(self, entry: dict, named: str, img_prefix: str) -> List[str]:
        if 'images' in entry:  # X-VLM's layout
            images = entry['images']
            if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
                raise AnnotationError(f'{named}: "images" must be a list of the two image paths, got {images!r}')
            if len(images) < 2:
                raise AnnotationError(f'{named} has no second image ("images": {images!r}); NLVR2 statements are '
                                      'about a pair of images: add it or remove the statement')
            if len(images) > 2:
                raise AnnotationError(f'{named} has {len(images)} images {images!r}; NLVR2 pairs have two')
            return [osp.join(img_prefix, p) for p in images]
        identifier = entry.get('identifier')
        if not isinstance(identifier, str) or identifier.count('-') < 3:
            raise AnnotationError(f'{named}: expected X-VLM\'s "images" list or an official NLVR2 "identifier" '
                                  f'(split-set-pair-sentence), got {entry!r}')
        pair = identifier.rsplit('-', 1)[0]
        folder = str(entry['directory']) if entry.get('directory') is not None else ''
        return [osp.join(img_prefix, folder, f'{pair}-img{k}.png') for k in (0, 1)]

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'annotation file {self.ann_file!r} does not exist')
        if self.split is None:
            self.split = osp.splitext(osp.basename(self.ann_file))[0]
        img_prefix = self.data_prefix.get('img', '')
        checker = ImageFileChecker(self.max_image_size)
        data_list, skipped, ids = [], [], set()
        for index, (at, entry) in enumerate(self._entries()):
            if not isinstance(entry, dict):
                raise AnnotationError(f'{self.ann_file}, {at}: expected an object with "sentence", "label" and the '
                                      f'images, got {entry!r}')
            stmt_id = entry.get('identifier', index)
            named = f'{self.ann_file}, {at}: statement {stmt_id!r}'
            if stmt_id in ids:
                raise AnnotationError(f'{named}: the identifier appears twice; identifiers must be unique')
            ids.add(stmt_id)
            paths = self._image_paths(entry, named, img_prefix)
            label = parse_label(entry.get('label'), named)
            sentence = entry.get('sentence')
            problem = None
            if not isinstance(sentence, str) or not sentence.strip():
                problem = (AnnotationError, f'{named} has an empty or non-string "sentence" {sentence!r}')
            elif self.check_images:
                for k, path in enumerate(paths):
                    found = checker(path)
                    if found is not None:
                        which = 'second' if k else 'first'
                        problem = (found[0], f'{named}: its {which} image: {found[1]}')
                        break
            if problem is not None:
                if not self.skip_invalid:
                    raise problem[0](problem[1])
                skipped.append(problem[1])
                continue
            info = dict(img_paths=paths, img_path=paths[0], img_id=stmt_id, text=sentence.strip(), label=label,
                        text_id=index, split=self.split)
            if 'template' in entry:
                info['template'] = entry['template']
            data_list.append(info)
        warn_skipped(self.ann_file, skipped, 'statement(s)')
        if not data_list:
            raise AnnotationError(f'{self.ann_file}: no statement')
        return data_list


@TRANSFORMS.register_module()
class ApplyToImagePair(BaseTransform):
    """Run ``transforms`` on each image of an NLVR2 pair separately (each draws its own random parameters).

    Required keys: ``img_paths`` (the two paths). Added key: ``pair``, two result dicts (copies of the sample with
    that image's ``img_path``, ``image_index`` 0/1, and whatever ``transforms`` add: ``img``, ``img_shape``,
    ``scale_factor``, ...). Load-time errors name the statement and which image.

    Args:
        transforms (list[dict]): The per-image pipeline, e.g. ``[dict(type='LoadImageFromFile'),
            dict(type='mmdet.Resize', scale=(384, 384), keep_ratio=False)]``.
    """

    def __init__(self, transforms: Sequence[dict]) -> None:
        self.transforms = Compose(list(transforms))

    def transform(self, results: dict) -> Optional[dict]:
        paths = results.get('img_paths')
        if not isinstance(paths, (list, tuple)) or len(paths) != 2:
            raise KeyError(f'ApplyToImagePair: {sample_where(results)} needs "img_paths" with the two images of the '
                           f'pair, got {paths!r}')
        pair = []
        for k, path in enumerate(paths):
            sub = {key: v for key, v in results.items() if key not in ('img_paths', 'pair')}
            sub.update(img_path=path, image_index=k)
            if results.get(IMAGE_CHECK_KEY):
                check = dict(results[IMAGE_CHECK_KEY])
                check['where'] = f'{sample_where(results)} ({"right" if k else "left"} image)'
                sub[IMAGE_CHECK_KEY] = check
            out = self.transforms(sub)
            if out is None:
                return None
            pair.append(out)
        results['pair'] = pair
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(transforms={self.transforms})'


@TRANSFORMS.register_module()
class PackNLVR2Inputs(BaseTransform):
    """Pack an NLVR2 sample after :class:`ApplyToImagePair`: ``inputs`` = [left, right] uint8 (3, H, W) tensors
    and ``data_samples`` = two :class:`~mmdet.structures.DetDataSample` (metainfo ``text``, ``label``, ``img_id``,
    ``image_index`` and each image's shapes; see the module doc). Batch them with :func:`nlvr2_collate`.

    Args:
        meta_keys (Sequence[str]): Keys copied to each data sample's metainfo when present.
    """

    def __init__(self, meta_keys: Sequence[str] = NLVR2_META_KEYS) -> None:
        self.pack = PackDetInputs(meta_keys=tuple(meta_keys))

    def transform(self, results: dict) -> dict:
        pair = results.get('pair')
        if not isinstance(pair, list) or len(pair) != 2:
            raise KeyError(f'PackNLVR2Inputs: {sample_where(results)} has no image pair; put ApplyToImagePair '
                           'before it')
        if 'label' not in results:
            raise KeyError(f'PackNLVR2Inputs: {sample_where(results)} has no "label"')
        packed = [self.pack(positive_strides(dict(p))) for p in pair]
        return dict(inputs=[p['inputs'] for p in packed], data_samples=[p['data_samples'] for p in packed])


@FUNCTIONS.register_module()
def nlvr2_collate(data_batch: Sequence[dict]) -> dict:
    """Batch NLVR2 samples (:class:`PackNLVR2Inputs`) as 2B consecutive image samples.

    Args:
        data_batch (list[dict]): B samples, each with ``inputs`` [left, right] (3, H, W) and ``data_samples``
            [left, right].

    Returns:
        dict: ``inputs`` list of 2B tensors, ``data_samples`` list of 2B data samples; ``2i`` and ``2i + 1`` are
        the left and right images of statement ``i`` (what mmdet's ``DetDataPreprocessor`` takes as is).

    Raises:
        ValueError: A sample is not an NLVR2 pair (e.g. packed by another transform).
    """
    inputs, samples = [], []
    for k, item in enumerate(data_batch):
        pair_inputs, pair_samples = item.get('inputs'), item.get('data_samples')
        if not isinstance(pair_inputs, (list, tuple)) or len(pair_inputs) != 2 \
                or not isinstance(pair_samples, (list, tuple)) or len(pair_samples) != 2:
            raise ValueError(f'nlvr2_collate: sample {k} of the batch is not an image pair packed by '
                             'PackNLVR2Inputs (inputs and data_samples must be lists of two)')
        inputs.extend(pair_inputs)
        samples.extend(pair_samples)
    return dict(inputs=inputs, data_samples=samples)
