from ._utils import demo_grounding_batch, get_config, tiny_mdetr_config, tiny_synthref

__all__ = ['get_config', 'tiny_mdetr_config', 'demo_grounding_batch', 'tiny_synthref']
