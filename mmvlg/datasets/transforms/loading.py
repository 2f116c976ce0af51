from typing import Optional

import numpy as np
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmdet.datasets.transforms import LoadAnnotations

from mmvlg.registry import TRANSFORMS

from ..validation import ImageError, check_loaded_image, sample_where


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCVLoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` (same arguments) whose errors name the sample, with load-time checks of the
    decoded image for the samples of mmvlg's data sets.

    With ``default_scope='mmvlg'`` a config's ``dict(type='LoadImageFromFile')`` is this transform.

    * A missing file raises ``FileNotFoundError``, and a file that does not decode (truncated, corrupt, empty,
      not an image) an :class:`~mmvlg.datasets.ImageError`, both naming the annotation file and the entry's
      id (expression, caption or question) and the image file, instead of mmcv's ``AssertionError: failed to
      load image`` or a bare ``cv2.error``. With ``ignore_empty=True`` such a sample gives None, as in mmcv.
    * For samples of mmvlg's data sets (those carrying the data set's checks, see
      :func:`~mmvlg.datasets.validation.image_check_info`), a decoded image larger than the data set's
      ``max_image_size`` on a side, or of another size than the entry's ``height`` and ``width``, is an
      :class:`~mmvlg.datasets.ImageError`.

    These cannot be skipped at load time (``skip_invalid`` of the data sets applies to what ``check_images``
    finds at start-up): the error says which entry to fix or remove.
    """

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        try:
            out = super().transform(results)
        except FileNotFoundError as err:
            raise FileNotFoundError(f'{sample_where(results)}: image file {path!r} does not exist; restore it or '
                                    'remove the entry') from err
        except MemoryError:
            raise
        except Exception as err:  # AssertionError (decoded to None), cv2.error (empty file), PIL errors, ...
            raise ImageError(f'{sample_where(results)}: image file {path!r} cannot be decoded (truncated, corrupt '
                             f'or not an image: {type(err).__name__}: {err}); replace the file or remove the '
                             'entry') from err
        if out is None:  # ignore_empty
            return None
        check_loaded_image(out['img'].shape, out)
        return out


@TRANSFORMS.register_module()
class LoadGroundingAnnotations(LoadAnnotations):
    """Load boxes like :class:`mmdet.datasets.transforms.LoadAnnotations` plus the grounding targets.

    Added keys: ``gt_tokens_positive`` (for each box, its list of [start, end) character spans of
    ``text``) and ``ori_gt_bboxes`` (the boxes in original image pixels, x1, y1, x2, y2, kept for the
    metrics whatever the later transforms do). ``text`` comes from the data info unchanged.
    """

    def __init__(self, with_bbox: bool = True, **kwargs) -> None:
        super().__init__(with_bbox=with_bbox, **kwargs)

    def transform(self, results: dict) -> dict:
        if 'text' not in results or not isinstance(results['text'], str):
            raise KeyError(f'LoadGroundingAnnotations: sample {results.get("img_path")} has no "text"')
        results = super().transform(results)
        instances = results.get('instances', [])
        results['gt_tokens_positive'] = [inst.get('tokens_positive', []) for inst in instances]
        results['ori_gt_bboxes'] = np.array([inst['bbox'] for inst in instances],
                                            dtype=np.float32).reshape(-1, 4)
        return results
