"""SOHO (arXiv:2104.03135): pre-training from pixels with a visual dictionary (MLM, MVM, ITM)."""
from .soho import SOHO, sample_itm_texts, sample_mvm_mask
from .soho_downstream import SOHOVQA, SOHODownstreamBase, SOHOPairClassifier, SOHOVQAHead

__all__ = ['SOHO', 'sample_itm_texts', 'sample_mvm_mask', 'SOHODownstreamBase', 'SOHOVQA', 'SOHOVQAHead',
           'SOHOPairClassifier']
