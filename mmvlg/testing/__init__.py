from ._utils import demo_grounding_batch, get_config, tiny_mdetr_config, tiny_synthref
from .fiber import fiber_head_config, tiny_fiber_backbone_config, tiny_fiber_config
from .fiber_coarse import demo_image_text_batch, tiny_fiber_coarse_config, tiny_fiber_vqa_config

__all__ = [
    'get_config', 'tiny_mdetr_config', 'demo_grounding_batch', 'tiny_synthref', 'tiny_fiber_backbone_config',
    'tiny_fiber_config', 'fiber_head_config', 'tiny_fiber_coarse_config', 'tiny_fiber_vqa_config',
    'demo_image_text_batch'
]
