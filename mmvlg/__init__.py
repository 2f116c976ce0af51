"""mmvlg: visual grounding and vision-language pre-training on MMEngine/MMDetection."""
from .utils.checkpoint import register_checkpoint_safe_globals
from .version import __version__

# MMEngine checkpoints hold a few non-tensor objects; allow exactly those under torch.load(weights_only=True).
register_checkpoint_safe_globals()

__all__ = ['__version__']
