from .atomic_io import atomic_torch_save, atomic_write_bytes, atomic_write_text
from .checkpoint import (
                         SAFE_CHECKPOINT_GLOBALS,
                         CheckpointLoadError,
                         CorruptCheckpointError,
                         UnsafeCheckpointError,
                         register_checkpoint_safe_globals,
                         restore_checkpoint,
                         safe_load_checkpoint,
                         sanitize_checkpoint,
)
from .checkpoint_keys import CheckpointKeysError, check_checkpoint_keys
from .safe_config import UnsafeConfigError, config_from_text
from .setup_env import register_all_modules

__all__ = ['register_all_modules', 'register_checkpoint_safe_globals', 'safe_load_checkpoint',
           'SAFE_CHECKPOINT_GLOBALS', 'UnsafeCheckpointError', 'sanitize_checkpoint', 'restore_checkpoint',
           'CheckpointLoadError', 'CorruptCheckpointError', 'atomic_torch_save', 'atomic_write_bytes',
           'atomic_write_text']
__all__ += ['CheckpointKeysError', 'check_checkpoint_keys', 'UnsafeConfigError', 'config_from_text']
