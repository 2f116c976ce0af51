"""mmvlg: visual grounding and vision-language pre-training on MMEngine/MMDetection."""
from .utils.checkpoint import register_checkpoint_safe_globals
from .utils.mim import register_mim_package
from .version import __version__

# MMEngine checkpoints hold a few non-tensor objects; allow exactly those under torch.load(weights_only=True).
register_checkpoint_safe_globals()
# `_base_ = 'mmvlg::mdetr/...py'` in any config read after `import mmvlg` (mmvlg/utils/mim.py).
register_mim_package()

__all__ = ['__version__']
