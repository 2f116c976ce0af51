from .fiber_backbone import FIBERBackbone, shift_window_self_attention
from .swin_checkpoint import load_swin_checkpoint, swin_key_format, swin_to_mmdet
from .timm_backbone import TimmBackbone, map_state_dict_by_order
from .xvlm_swin import XVLMSwin
from .xvlm_vit import XVLMViT

__all__ = [
    'TimmBackbone', 'map_state_dict_by_order', 'FIBERBackbone', 'shift_window_self_attention',
    'load_swin_checkpoint', 'swin_key_format', 'swin_to_mmdet', 'XVLMViT', 'XVLMSwin'
]
