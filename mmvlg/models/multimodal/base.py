"""The base of mmvlg's vision-language models that are not detectors (pre-training, retrieval, VQA, ...)."""
from typing import Dict, Sequence, Union

from mmdet.structures import SampleList
from mmengine.model import BaseModel
from torch import Tensor

from ..utils.image_masks import padding_mask


class VisionLanguageMixin:
    """What every mmvlg vision-language model shares, detectors included: the padding mask of a batch and
    tokenization through the model's text encoder.

    A model names its text encoder (an :class:`~mmvlg.models.language_models.HFTextEncoder`) by overriding
    :attr:`text_encoder`; the default looks for ``language_model`` on the model, then on its backbone (FIBER's
    fusion backbone holds the text encoder).
    """

    @property
    def text_encoder(self):
        """The model's :class:`~mmvlg.models.language_models.HFTextEncoder`."""
        for owner in (self, getattr(self, 'backbone', None)):
            encoder = getattr(owner, 'language_model', None) if owner is not None else None
            if encoder is not None:
                return encoder
        raise AttributeError(f'{type(self).__name__} has no text encoder (language_model); override text_encoder')

    @property
    def tokenizer(self):
        """The text encoder's tokenizer."""
        return self.text_encoder.tokenizer

    def tokenize(self, texts: Sequence[str], device=None) -> Dict[str, Tensor]:
        """Tokenize ``texts`` with the model's text encoder (``input_ids``, ``attention_mask``, ``offsets``)."""
        return self.text_encoder.tokenize(list(texts), device=device)

    @staticmethod
    def padding_mask(inputs: Tensor, data_samples: SampleList) -> Tensor:
        """(bs, H, W) bool, True at the padding the data preprocessor added around each ``img_shape``
        (:func:`mmvlg.models.utils.padding_mask`)."""
        return padding_mask(inputs, data_samples)


class BaseVLModel(VisionLanguageMixin, BaseModel):
    """Base class of mmvlg's vision-language models outside ``models/detectors/``.

    ``forward(inputs, data_samples, mode)`` dispatches as MMDetection's detectors do: ``'loss'`` ->
    :meth:`loss` (a dict of losses), ``'predict'`` -> :meth:`predict` (the data samples with predictions),
    ``'tensor'`` -> :meth:`_forward` (raw outputs). Inputs are the data preprocessor's (bs, C, H, W) images
    and one data sample per image carrying ``text`` and the task's targets.
    """

    def forward(self, inputs: Tensor, data_samples: SampleList = None,
                mode: str = 'tensor') -> Union[Dict[str, Tensor], SampleList, tuple, Tensor]:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, predict and tensor mode')

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        raise NotImplementedError(f'{type(self).__name__} does not train')

    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        raise NotImplementedError(f'{type(self).__name__} has no predict mode')

    def _forward(self, inputs: Tensor, data_samples: SampleList = None):
        raise NotImplementedError(f'{type(self).__name__} has no tensor mode')
