"""Vision-language models that are not detectors, one package per algorithm (as MMPretrain's
``models/multimodal/<algo>/``); grounding detectors live in ``models/detectors/``."""
from .base import BaseVLModel, VisionLanguageMixin
from .fiber import FIBERVQA, FIBERCoarse, FIBERCoarseBase
from .soho import SOHO
from .xvlm import XVLM

__all__ = ['BaseVLModel', 'VisionLanguageMixin', 'FIBERCoarse', 'FIBERVQA', 'FIBERCoarseBase', 'XVLM', 'SOHO']
