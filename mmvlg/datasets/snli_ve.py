"""SNLI-VE: visual entailment (Xie et al., 2019, "Visual Entailment: A Novel Task for Fine-Grained Image
Understanding"): does a Flickr30k image entail, contradict or leave open a hypothesis sentence.

The official files (``snli_ve_train.jsonl``, ``snli_ve_dev.jsonl``, ``snli_ve_test.jsonl``) hold one JSON object a
line, SNLI's pairs with the premise caption replaced by its Flickr30k image. The fields read here:

* ``Flikr30kID`` (sic, the released files' spelling; ``Flickr30kID`` and ``Flickr30K_ID`` are accepted too): the
  image file name, e.g. ``"3416050480.jpg"`` (``.jpg`` is appended to an id without extension), under the image
  folder (``data_prefix=dict(img='flickr30k_images/')``);
* ``sentence2``: the hypothesis (the model's text);
* ``gold_label``: ``"entailment"``, ``"neutral"`` or ``"contradiction"``; anything else (SNLI's ``"-"`` of pairs
  without a majority, a typo) is an :class:`~mmvlg.datasets.AnnotationError` naming the file and the line;
* ``pairID`` (optional): the pair's id (else ``"line N"``), unique in the file;
* ``sentence1`` (optional): SNLI's premise caption, kept as ``premise`` (not used by the visual models);
* ``hypothesis_type`` (optional, SynthRef entailment's): the hypothesis' template, for per-template scores.

Other fields (``captionID``, ``annotator_labels``, the parses) are ignored.
"""
import os.path as osp
from typing import List, Optional

from mmengine.dataset import BaseDataset

from mmvlg.registry import DATASETS

from .caption import _read_jsonl
from .seeding import SampleSeedingMixin
from .validation import (
    DEFAULT_MAX_IMAGE_SIZE,
    AnnotationError,
    ImageFileChecker,
    check_max_image_size,
    image_check_info,
    warn_skipped,
)

__all__ = ['SNLIVEDataset', 'ENTAILMENT_CLASSES', 'IMAGE_ID_KEYS', 'parse_entailment_label']

ENTAILMENT_CLASSES = ('entailment', 'neutral', 'contradiction')
IMAGE_ID_KEYS = ('Flikr30kID', 'Flickr30kID', 'Flickr30K_ID')


def parse_entailment_label(value, where: str) -> int:
    """The index of ``value`` in :data:`ENTAILMENT_CLASSES` (case and surrounding spaces ignored); an
    :class:`AnnotationError` naming ``where`` otherwise."""
    if isinstance(value, str) and value.strip().lower() in ENTAILMENT_CLASSES:
        return ENTAILMENT_CLASSES.index(value.strip().lower())
    raise AnnotationError(f'{where} has the gold_label {value!r}; expected one of {list(ENTAILMENT_CLASSES)} '
                          '(SNLI\'s "-", no majority among the annotators, is not a class: remove those lines)')


@DATASETS.register_module()
class SNLIVEDataset(SampleSeedingMixin, BaseDataset):
    """SNLI-VE's (image, hypothesis, label) triples from its JSON-lines files (see the module doc).

    ``data_info`` keys: ``img_path``, ``img_id`` (the ``pairID``, else ``"line N"``), ``image_id`` (the Flickr30k
    file name), ``text`` (the hypothesis, stripped), ``label`` (0 entailment, 1 neutral, 2 contradiction),
    ``text_id`` (the index of the line among the pairs), ``split``, and when the line has them ``premise`` and
    ``hypothesis_type``. Pack them with ``PackImageTextInputs(meta_keys=(..., 'label', 'hypothesis_type'))``.

    Args:
        split (str, optional): Name of the split (default: the annotation file's name).
        skip_invalid (bool): Skip pairs with an empty hypothesis or (with ``check_images``) a missing or
            unreadable image, counted in a warning, instead of raising. Lines that are not JSON objects, without an
            image id, with a label outside the three classes or a duplicate ``pairID``, and an empty file are always
            errors (:class:`~mmvlg.datasets.AnnotationError` naming the file and the line).
        check_images (bool): Check at start-up that every image file exists and is an image of at most
            ``max_image_size``. Defaults to True.
        max_image_size (int, optional): Largest allowed image side. Defaults to 8192.
        **kwargs: :class:`mmengine.dataset.BaseDataset` arguments (``data_root``, ``ann_file``,
            ``data_prefix=dict(img=...)``, ``pipeline``, ...).
    """

    METAINFO = dict(task='visual_entailment', classes=ENTAILMENT_CLASSES)

    def __init__(self, *args, split: Optional[str] = None, skip_invalid: bool = False, check_images: bool = True,
                 max_image_size: Optional[int] = DEFAULT_MAX_IMAGE_SIZE, **kwargs) -> None:
        self.split = split
        self.skip_invalid = skip_invalid
        self.check_images = check_images
        self.max_image_size = check_max_image_size(max_image_size, type(self).__name__)
        kwargs.setdefault('data_prefix', dict(img=''))
        super().__init__(*args, **kwargs)

    def get_data_info(self, idx: int) -> dict:
        """The data info of sample ``idx``, with the pair's name and ``max_image_size`` for the load-time
        checks."""
        info = super().get_data_info(idx)
        info.update(image_check_info(f'{self.ann_file}: pair {info["img_id"]!r}', self.max_image_size))
        return info

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'annotation file {self.ann_file!r} does not exist')
        if self.split is None:
            self.split = osp.splitext(osp.basename(self.ann_file))[0]
        img_prefix = self.data_prefix.get('img', '')
        checker = ImageFileChecker(self.max_image_size)
        data_list, skipped, ids = [], [], set()
        for lineno, entry in _read_jsonl(self.ann_file):
            at = f'{self.ann_file}, line {lineno}'
            if not isinstance(entry, dict):
                raise AnnotationError(f'{at}: expected an object with "{IMAGE_ID_KEYS[0]}", "sentence2" and '
                                      f'"gold_label", got {entry!r}')
            pair_id = entry.get('pairID', f'line {lineno}')
            named = f'{at}: pair {pair_id!r}'
            if pair_id in ids:
                raise AnnotationError(f'{named}: the pairID appears twice; pair ids must be unique')
            ids.add(pair_id)
            image = next((entry[k] for k in IMAGE_ID_KEYS if entry.get(k) not in (None, '')), None)
            if image is None:
                raise AnnotationError(f'{named} has no image id (one of {list(IMAGE_ID_KEYS)})')
            image = str(image)
            if not osp.splitext(image)[1]:
                image += '.jpg'
            label = parse_entailment_label(entry.get('gold_label'), named)
            hypothesis = entry.get('sentence2')
            path = osp.join(img_prefix, image)
            problem = None
            if not isinstance(hypothesis, str) or not hypothesis.strip():
                problem = (AnnotationError, f'{named} has an empty or non-string hypothesis "sentence2" '
                                            f'{hypothesis!r}')
            elif self.check_images:
                found = checker(path)
                if found is not None:
                    problem = (found[0], f'{named}: {found[1]}')
            if problem is not None:
                if not self.skip_invalid:
                    raise problem[0](problem[1])
                skipped.append(problem[1])
                continue
            info = dict(img_path=path, img_id=pair_id, image_id=image, text=hypothesis.strip(), label=label,
                        text_id=len(data_list) + len(skipped), split=self.split)
            if isinstance(entry.get('sentence1'), str):
                info['premise'] = entry['sentence1']
            if entry.get('hypothesis_type') is not None:
                info['hypothesis_type'] = entry['hypothesis_type']
            data_list.append(info)
        warn_skipped(self.ann_file, skipped, 'pair(s)')
        if not data_list:
            raise AnnotationError(f'{self.ann_file}: no (image, hypothesis) pair')
        return data_list
