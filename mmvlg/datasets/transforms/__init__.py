from .formatting import PackGroundingInputs
from .loading import LoadGroundingAnnotations
from .text_utils import replace_words_keep_spans
from .transforms import GroundingRandomFlip, RandomCropKeepBoxes

__all__ = ['LoadGroundingAnnotations', 'GroundingRandomFlip', 'RandomCropKeepBoxes', 'PackGroundingInputs',
           'replace_words_keep_spans']
