"""X-VLM (arXiv:2111.08276): multi-grained vision-language pre-training and its downstream models."""
from .xvlm import XVLM
from .xvlm_grounding import XVLMGrounding, XVLMWeakGrounding

__all__ = ['XVLM', 'XVLMGrounding', 'XVLMWeakGrounding']
