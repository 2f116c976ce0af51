"""Deprecated location: FIBER's coarse-grained models moved to :mod:`mmvlg.models.multimodal.fiber`. This
alias stays for one release."""
import warnings

from ..multimodal.fiber import FIBERVQA, FIBERCoarse, FIBERCoarseBase, ids_tensor

warnings.warn('mmvlg.models.vl_models is deprecated; import from mmvlg.models.multimodal instead',
              DeprecationWarning, stacklevel=2)

__all__ = ['FIBERCoarse', 'FIBERVQA', 'FIBERCoarseBase', 'ids_tensor']
