"""SOHO (arXiv:2104.03135): pre-training from pixels with a visual dictionary (MLM, MVM, ITM)."""
from .soho import SOHO, sample_itm_texts, sample_mvm_mask

__all__ = ['SOHO', 'sample_itm_texts', 'sample_mvm_mask']
