"""SynthRef captions: kept at this path for compatibility; it lives in :mod:`mmvlg.datasets.synthetic.captions`."""
from .synthetic.captions import (
    CAPTIONS_FORMAT_VERSION,
    NUMBERS,
    PHRASINGS,
    SynthRefCaptionDataset,
    SynthRefCaptionsConfig,
    caption_vocabulary,
    describe_scene,
    generate_caption_split,
    generate_synthref_captions,
)

_generate_split = generate_caption_split

__all__ = ['PHRASINGS', 'NUMBERS', 'CAPTIONS_FORMAT_VERSION', 'SynthRefCaptionsConfig', 'describe_scene',
           'caption_vocabulary', 'generate_synthref_captions', 'SynthRefCaptionDataset']
