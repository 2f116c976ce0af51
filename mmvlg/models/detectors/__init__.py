from .fiber import FIBER
from .fiber_detection import FIBERObjectDetector
from .mdetr import MDETR

__all__ = ['MDETR', 'FIBER', 'FIBERObjectDetector']
