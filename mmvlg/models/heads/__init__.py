from .mdetr_head import MDETRHead

__all__ = ['MDETRHead']
