from .checkpoint_safety_hook import SafeCheckpointHook

__all__ = ['SafeCheckpointHook']
