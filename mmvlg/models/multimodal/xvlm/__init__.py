"""X-VLM (arXiv:2111.08276): multi-grained vision-language pre-training and its downstream models."""
from .xvlm import XVLM

__all__ = ['XVLM']
