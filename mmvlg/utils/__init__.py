from .checkpoint import SAFE_CHECKPOINT_GLOBALS, register_checkpoint_safe_globals, safe_load_checkpoint
from .setup_env import register_all_modules

__all__ = ['register_all_modules', 'register_checkpoint_safe_globals', 'safe_load_checkpoint',
           'SAFE_CHECKPOINT_GLOBALS']
