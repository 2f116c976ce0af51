from .low_level_fusion import LowLevelFusionNeck
from .soho_neck import SOHONeck

__all__ = ['LowLevelFusionNeck', 'SOHONeck']
