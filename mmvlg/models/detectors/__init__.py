from .mdetr import MDETR

__all__ = ['MDETR']
