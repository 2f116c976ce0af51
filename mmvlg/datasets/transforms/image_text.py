"""Packing of image-level vision-language samples (captions, questions) for the models."""
from typing import Sequence

from mmdet.datasets.transforms import PackDetInputs

from mmvlg.registry import TRANSFORMS

from .formatting import positive_strides

IMAGE_TEXT_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction',
                        'text', 'text_id', 'split', 'question_id', 'answers', 'answer_labels', 'answer_scores',
                        'answer_type', 'question_type')


@TRANSFORMS.register_module()
class PackImageTextInputs(PackDetInputs):
    """Pack an image and its text (a caption, or a question with its answers) into ``inputs`` (3, H, W) and a
    :class:`mmdet.structures.DetDataSample` whose metainfo carries the text and its ids.

    Metainfo (those present in the results): ``text`` (the caption or question), ``img_id`` (samples with the
    same ``img_id`` show the same image: never a negative of each other, and one gallery image in retrieval),
    ``text_id``, ``split``, the image shapes, and for VQA ``question_id``, ``answers`` (the annotators' raw
    answers, for the VQA accuracy), ``answer_labels`` and ``answer_scores`` (the soft targets over the answer
    vocabulary).

    Args:
        meta_keys (Sequence[str]): Keys copied to the metainfo when present.
    """

    def __init__(self, meta_keys: Sequence[str] = IMAGE_TEXT_META_KEYS) -> None:
        super().__init__(meta_keys=tuple(meta_keys))

    def transform(self, results: dict) -> dict:
        text = results.get('text')
        if not isinstance(text, str) or not text.strip():
            raise KeyError(f'PackImageTextInputs: sample {results.get("img_path")} (text id '
                           f'{results.get("text_id")}) has no text')
        return super().transform(positive_strides(results))
