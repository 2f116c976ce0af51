"""X-VLM (arXiv:2111.08276): multi-grained vision-language pre-training and its downstream models."""
from .xvlm import XVLM
from .xvlm_grounding import XVLMGrounding, XVLMWeakGrounding
from .xvlm_nlvr import XVLMNLVR, XVLMNLVRPretrain
from .xvlm_vqa import XVLMVQA

__all__ = ['XVLM', 'XVLMGrounding', 'XVLMWeakGrounding', 'XVLMVQA', 'XVLMNLVR', 'XVLMNLVRPretrain']
