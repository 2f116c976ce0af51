from .caption import CaptionDataset
from .flickr30k import Flickr30kEntitiesDataset
from .nlvr2 import ApplyToImagePair, NLVR2Dataset, PackNLVR2Inputs, nlvr2_collate
from .refexp import (
    AnnotationError,
    ImageError,
    MDETRRefExpDataset,
    RefCOCODataset,
    RefCOCOgDataset,
    RefCOCOPlusDataset,
    SynthRefDataset,
)
from .region_text import RegionTextDataset
from .snli_ve import SNLIVEDataset
from .synthetic import (
    SynthRefCaptionDataset,
    SynthRefCaptionsConfig,
    SynthRefVQAConfig,
    SynthRefVQADataset,
    generate_synthref_captions,
    generate_synthref_vqa,
)
from .transforms import *  # noqa: F401,F403
from .vqa import VQAv2Dataset, answer_soft_score, build_answer_list

__all__ = [
    'AnnotationError', 'ImageError', 'MDETRRefExpDataset', 'RefCOCODataset', 'RefCOCOPlusDataset', 'RefCOCOgDataset',
    'SynthRefDataset', 'Flickr30kEntitiesDataset', 'CaptionDataset', 'SynthRefCaptionDataset',
    'SynthRefCaptionsConfig', 'generate_synthref_captions', 'VQAv2Dataset', 'answer_soft_score',
    'build_answer_list', 'SynthRefVQADataset', 'SynthRefVQAConfig', 'generate_synthref_vqa', 'RegionTextDataset',
    'NLVR2Dataset', 'ApplyToImagePair', 'PackNLVR2Inputs', 'nlvr2_collate', 'SNLIVEDataset'
]
