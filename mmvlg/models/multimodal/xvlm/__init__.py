"""X-VLM (arXiv:2111.08276): multi-grained vision-language pre-training and its downstream models."""
from .xvlm import XVLM
from .xvlm_grounding import XVLMGrounding, XVLMWeakGrounding
from .xvlm_nlvr import XVLMNLVR, XVLMNLVRPretrain

__all__ = ['XVLM', 'XVLMGrounding', 'XVLMWeakGrounding', 'XVLMNLVR', 'XVLMNLVRPretrain']
