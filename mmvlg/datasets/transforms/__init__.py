from .detection_prompt import DETECTION_META_KEYS, DetectionPrompt, build_detection_prompt, clean_class_name
from .formatting import PackGroundingInputs
from .image_text import IMAGE_TEXT_META_KEYS, PackImageTextInputs
from .loading import LoadGroundingAnnotations, LoadImageFromFile
from .proposals import LoadProposals, load_proposal_file
from .region_text import REGION_TEXT_META_KEYS, PackRegionTextInputs, RegionTextSampler
from .text_utils import replace_words_keep_spans
from .transforms import GroundingRandomFlip, RandomCropKeepBoxes

__all__ = [
    'LoadImageFromFile', 'LoadGroundingAnnotations', 'GroundingRandomFlip', 'RandomCropKeepBoxes',
    'PackGroundingInputs', 'replace_words_keep_spans', 'PackImageTextInputs', 'IMAGE_TEXT_META_KEYS', 'DetectionPrompt',
    'DETECTION_META_KEYS', 'build_detection_prompt', 'clean_class_name', 'RegionTextSampler', 'PackRegionTextInputs',
    'REGION_TEXT_META_KEYS', 'LoadProposals', 'load_proposal_file'
]
