from .timm_backbone import TimmBackbone, map_state_dict_by_order

__all__ = ['TimmBackbone', 'map_state_dict_by_order']
