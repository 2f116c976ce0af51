from .low_level_fusion import LowLevelFusionNeck

__all__ = ['LowLevelFusionNeck']
