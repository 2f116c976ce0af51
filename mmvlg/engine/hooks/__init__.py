from .checkpoint_keys_hook import CheckpointKeysHook
from .checkpoint_safety_hook import SafeCheckpointHook
from .freeze_modules_hook import FreezeModulesHook
from .param_checksum_hook import ParamChecksumHook, param_checksum
from .random_state_hook import RandomStateHook
from .sample_visualization_hook import SampleVisualizationHook
from .siri_hook import SiRiHook

__all__ = ['CheckpointKeysHook', 'SafeCheckpointHook', 'ParamChecksumHook', 'param_checksum', 'SampleVisualizationHook',
           'SiRiHook', 'RandomStateHook', 'FreezeModulesHook']
