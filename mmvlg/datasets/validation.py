"""Checks of annotation entries, image files and caption lengths shared by the data sets of mmvlg.

Every check names the file and the entry (expression, caption, question) in its message and says what to do.
The data sets call them at start-up (:func:`check_box_xywh`, :func:`check_spans`, :func:`check_image_size`,
:class:`ImageFileChecker`, :func:`check_text_lengths`); the loading transform
(:class:`~mmvlg.datasets.transforms.LoadImageFromFile`) calls :func:`check_loaded_image` on the decoded array,
with the entry's name and the data set's limits that the data set puts under :data:`IMAGE_CHECK_KEY` of every
sample (:func:`image_check_info`).
"""
import math
import os.path as osp
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

# Largest image side (pixels) a data set accepts unless told otherwise: a 10000x8000 photo in a pipeline
# without a resize runs the model out of memory long after start-up.
DEFAULT_MAX_IMAGE_SIZE = 8192
# The key of a sample (data info) under which a data set passes ``where`` (the file and the entry, for error
# messages) and ``max_size`` to the loading transform.
IMAGE_CHECK_KEY = 'image_check'
# EXIF orientations that turn the stored image by 90 degrees (decoders that apply them swap width and height).
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


class AnnotationError(ValueError):
    """An annotation file, or one entry of it, is malformed. The message names the file and the entry."""


class ImageError(AnnotationError):
    """The image file of an entry is corrupt or not an image, larger than allowed, or of another size than the
    entry's ``height`` and ``width``. The message names the annotation file, the entry and the image file."""


def is_number(value: Any) -> bool:
    """Whether ``value`` is a JSON number (an int or a float, not a bool or a string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_box_xywh(box: Any, where: str) -> Tuple[float, float, float, float]:
    """The 4 finite numbers of a COCO ``bbox`` (x, y, width, height); an :class:`AnnotationError` naming
    ``where`` (the file and the entry) otherwise (null, strings, NaN, infinity, a wrong length)."""
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(is_number(v) for v in box):
        raise AnnotationError(f'{where} has no "bbox" of 4 numbers [x, y, width, height]: got {box!r}; fix the '
                              'entry or remove it')
    if not all(math.isfinite(v) for v in box):
        raise AnnotationError(f'{where} has a non-finite "bbox" {box!r} (NaN or infinity); fix the entry or '
                              'remove it')
    return tuple(float(v) for v in box)


def check_spans(spans: Any, text: str, where: str, name: str = 'tokens_positive') -> List[List[int]]:
    """A list of [start, end) character spans of ``text`` as lists of ints; an :class:`AnnotationError` naming
    ``where`` for anything else (strings, NaN, floats with a fraction, spans outside ``text``)."""
    if not isinstance(spans, (list, tuple)) or not all(isinstance(sp, (list, tuple)) and len(sp) == 2
                                                       for sp in spans):
        raise AnnotationError(f'{where}: {name} must be a list of [start, end] spans, got {spans!r}')
    out = []
    for sp in spans:
        if not all(is_number(v) and math.isfinite(v) and float(v).is_integer() for v in sp):
            raise AnnotationError(f'{where}: {name} span {list(sp)!r} is not two integer character positions '
                                  '(NaN, infinity, strings and fractions are invalid); fix the entry')
        s, e = int(sp[0]), int(sp[1])
        if not 0 <= s < e <= len(text):
            raise AnnotationError(f'{where}: {name} span {[s, e]} is outside the caption {text!r}')
        out.append([s, e])
    return out


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, str):  # MDETR's Flickr30k files store the size as strings ("500")
        return int(value.strip())
    if isinstance(value, float):
        if not value.is_integer():  # NaN and infinity included
            raise ValueError(value)
        return int(value)
    if isinstance(value, int):
        return value
    raise TypeError(value)


def check_image_size(height: Any, width: Any, where: str) -> Tuple[int, int]:
    """The positive integer (height, width) of an entry (ints, integral floats or digit strings)."""
    try:
        h, w = _integer(height), _integer(width)
    except (TypeError, ValueError) as err:
        raise AnnotationError(f'{where} has a non-integer image size {width!r}x{height!r}') from err
    if not (h > 0 and w > 0):
        raise AnnotationError(f'{where} has a non-positive image size {w}x{h}')
    return h, w


def check_unique_id(entry_id: Any, seen: set, where: str) -> None:
    """An :class:`AnnotationError` when ``entry_id`` was seen before (``seen`` is updated)."""
    try:
        duplicate = entry_id in seen
    except TypeError as err:  # a list or a dict as the id
        raise AnnotationError(f'{where}: the id {entry_id!r} is not a number or a string') from err
    if duplicate:
        raise AnnotationError(f'{where}: the id {entry_id!r} appears twice; ids must be unique')
    seen.add(entry_id)


# ------------------------------------------------------------------------------------------------ images
def _max_size_message(path: str, w: int, h: int, max_size: int) -> str:
    return (f'image file {path!r} is {w}x{h} pixels, more than max_image_size={max_size} on a side; resize the '
            'image, or raise the data set\'s max_image_size (None: no limit) if the pipeline resizes it')


def _size_mismatch_message(path: str, w: int, h: int, ann_h: int, ann_w: int) -> str:
    hint = (' (swapped: the file has an EXIF orientation that the decoder applies; rotate the pixels or fix '
            'the annotation)' if (w, h) == (ann_h, ann_w) else '')
    return (f'image file {path!r} is {w}x{h} pixels but the entry\'s width x height is {ann_w}x{ann_h}: its '
            f'boxes would be misplaced{hint}; fix the entry\'s "height"/"width" (and its boxes) or the image')


class ImageFileChecker:
    """Start-up check of image files from their headers only (PIL reads the size without decoding), cached per
    file: missing files, files that are no image (a text file named ``.jpg``, a zero-byte or cut header), images
    larger than ``max_size`` on a side and images of another size than annotated.

    Damage past the header (a truncated JPEG or PNG body) is found when the image is loaded
    (:func:`check_loaded_image`).

    Args:
        max_size (int, optional): Largest allowed image side in pixels; None for no limit.
    """

    def __init__(self, max_size: Optional[int] = None) -> None:
        self.max_size = max_size
        self._headers: Dict[str, Any] = {}

    def _header(self, path: str):
        """(width, height, transposed) of the file, or the exception it raised."""
        if path not in self._headers:
            self._headers[path] = self._read_header(path)
        return self._headers[path]

    @staticmethod
    def _read_header(path: str):
        if not osp.isfile(path):
            return FileNotFoundError()
        from PIL import Image
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    w, h = im.size
                    orientation = 1
                    if 'exif' in im.info:  # (PIL decodes a PNG to look for an EXIF chunk that open() did not see)
                        try:
                            orientation = im.getexif().get(0x0112, 1)
                        except Exception:  # an unreadable EXIF block does not stop the decoder
                            pass
            return w, h, orientation in _TRANSPOSING_ORIENTATIONS
        except Image.DecompressionBombError as err:
            return err
        except Exception as err:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ValueError, ...
            return err

    def __call__(self, path: str, height: Optional[int] = None, width: Optional[int] = None
                 ) -> Optional[Tuple[type, str]]:
        """None when the file passes, else (the exception class to raise, the message without the entry's name):
        ``FileNotFoundError`` for a missing file, :class:`ImageError` for the others."""
        header = self._header(path)
        if isinstance(header, FileNotFoundError):
            return FileNotFoundError, f'image file {path!r} does not exist'
        from PIL import Image
        if isinstance(header, Image.DecompressionBombError):
            return ImageError, (f'image file {path!r} has more pixels than PIL decodes ({header}); resize the '
                                'image')
        if isinstance(header, Exception):
            return ImageError, (f'image file {path!r} is not a readable image ({type(header).__name__}: '
                                f'{header}); replace the file, or remove the entry')
        w, h, transposed = header
        if self.max_size is not None and max(w, h) > self.max_size:
            return ImageError, _max_size_message(path, w, h, self.max_size)
        if height is not None and width is not None and (h, w) != (height, width) \
                and not (transposed and (w, h) == (height, width)):
            # (a decoder that ignores the EXIF orientation sees the stored size: accepted here, checked at load)
            return ImageError, _size_mismatch_message(path, w, h, height, width)
        return None


def check_max_image_size(max_image_size: Optional[int], owner: str) -> Optional[int]:
    """Validate a data set's ``max_image_size`` argument."""
    if max_image_size is not None and (not isinstance(max_image_size, int) or isinstance(max_image_size, bool)
                                       or max_image_size < 1):
        raise ValueError(f'{owner}: max_image_size must be a positive number of pixels or None, got '
                         f'{max_image_size!r}')
    return max_image_size


def image_check_info(where: str, max_size: Optional[int]) -> dict:
    """What a data set adds to a sample for :func:`check_loaded_image`: under :data:`IMAGE_CHECK_KEY`, the
    entry's name (the file and the id) and the largest allowed image side."""
    return {IMAGE_CHECK_KEY: dict(where=where, max_size=max_size)}


def sample_where(results: dict) -> str:
    """The entry's name for messages: the data set's (:func:`image_check_info`), else the sample's ids."""
    check = results.get(IMAGE_CHECK_KEY) or {}
    if check.get('where'):
        return check['where']
    ids = [f'{k} {results[k]!r}' for k in ('img_id', 'question_id', 'text_id') if results.get(k) is not None]
    return 'sample ' + (', '.join(ids) if ids else '?')


def check_loaded_image(img_shape: Sequence[int], results: dict) -> None:
    """Load-time check of a decoded image of a sample of an mmvlg data set (one with :data:`IMAGE_CHECK_KEY`):
    its size against the data set's ``max_image_size`` and the entry's ``height``/``width``.

    Raises:
        ImageError: Naming the annotation file, the entry and the image file.
    """
    check = results.get(IMAGE_CHECK_KEY)
    if not check:
        return
    h, w = int(img_shape[0]), int(img_shape[1])
    path, where = results.get('img_path'), sample_where(results)
    max_size = check.get('max_size')
    if max_size is not None and max(h, w) > max_size:
        raise ImageError(f'{where}: {_max_size_message(path, w, h, max_size)}')
    ann_h, ann_w = results.get('height'), results.get('width')
    if ann_h is not None and ann_w is not None and (h, w) != (int(ann_h), int(ann_w)):
        raise ImageError(f'{where}: {_size_mismatch_message(path, w, h, int(ann_h), int(ann_w))}')


# ------------------------------------------------------------------------------------------------ captions
def build_tokenizer(text_encoder: dict) -> Tuple[Any, int]:
    """The tokenizer and ``max_length`` of an :class:`~mmvlg.models.language_models.HFTextEncoder` config
    (``name_or_path`` or ``tokenizer``, and ``max_length``; its other keys are ignored), as the encoder builds
    them."""
    from mmvlg.models.language_models.hf_text_encoder import build_word_tokenizer, pretrained_source, resolve_vocab
    cfg = dict(text_encoder)
    max_length = int(cfg.get('max_length', 256))
    if cfg.get('name_or_path') is not None:
        import transformers
        path, kwargs = pretrained_source(cfg['name_or_path'])  # a missing folder / offline hub fails at once
        return transformers.AutoTokenizer.from_pretrained(path, use_fast=True, **kwargs), max_length
    tok_cfg = dict(cfg.get('tokenizer') or {})
    if not tok_cfg or tok_cfg.pop('type', 'word') != 'word':
        raise ValueError(f'text_encoder: expected the text encoder\'s name_or_path, or a word tokenizer config '
                         f'(tokenizer=dict(type="word", vocab=... | vocab_file=...)), got {text_encoder}')
    vocab = resolve_vocab(tok_cfg.pop('vocab', None), tok_cfg.pop('vocab_file', None))
    return build_word_tokenizer(vocab, **tok_cfg), max_length


def kept_characters(tokenizer, texts: Sequence[str], max_length: int) -> List[Optional[int]]:
    """For every text, None when it fits in ``max_length`` tokens, else how many leading characters survive the
    truncation (the end of the last kept token)."""
    if not texts:
        return []
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, return_offsets_mapping=True)
    encodings = getattr(enc, 'encodings', None)
    out: List[Optional[int]] = []
    for i, (text, offsets) in enumerate(zip(texts, enc['offset_mapping'])):
        end = max((int(e) for s, e in offsets if e > s), default=0)
        if encodings is not None:
            cut = bool(encodings[i].overflowing)
        else:  # a slow tokenizer: the kept tokens stop before the text does
            cut = end < len(text.rstrip())
        out.append(end if cut else None)
    return out


def check_text_lengths(texts: Sequence[str], spans: Sequence[Sequence[Sequence[int]]], text_encoder: dict
                       ) -> Tuple[int, int, List[Tuple[int, List[int], int]]]:
    """Which texts the text encoder truncates, and which referred spans the truncation cuts.

    Args:
        texts: The captions (questions).
        spans: For every text, the character spans that name a referred object (empty for plain captions).
        text_encoder (dict): The model's text encoder config, see :func:`build_tokenizer`.

    Returns:
        tuple: ``max_length``, the number of truncated texts, and for every text whose spans reach past the cut,
        (its index, the first such span, the number of characters kept).
    """
    tokenizer, max_length = build_tokenizer(text_encoder)
    cut = []
    kept = kept_characters(tokenizer, texts, max_length)
    for i, k in enumerate(kept):
        if k is None:
            continue
        past = [list(sp) for sp in spans[i] if sp[1] > k]
        if past:
            cut.append((i, past[0], k))
    return max_length, sum(k is not None for k in kept), cut


def cut_span_message(where: str, text: str, span: Sequence[int], kept: int, max_length: int) -> str:
    s, e = span
    return (f'{where}: the caption is longer than the text encoder\'s max_length={max_length} tokens and the '
            f'referred words {text[s:e]!r} (characters {s}-{e}) lie past the cut at character {kept}, so the '
            'model would never see them; shorten the caption or raise max_length')


def warn_truncated(ann_file: str, num_truncated: int, total: int, max_length: int) -> None:
    if num_truncated:
        warnings.warn(f'{ann_file}: {num_truncated} of {total} text(s) are longer than the text encoder\'s '
                      f'max_length={max_length} tokens and will be truncated')


def warn_skipped(ann_file: str, skipped: List[str], what: str = 'expression(s)') -> None:
    """The warning of ``skip_invalid=True``: how many entries were skipped, and the first reason."""
    if skipped:
        warnings.warn(f'{ann_file}: skipped {len(skipped)} invalid {what} (skip_invalid=True); first: '
                      f'{skipped[0]}')
