from .attention import attention_heatmap, draw_attention
from .grounding_visualizer import GroundingVisualizer

__all__ = ['GroundingVisualizer', 'attention_heatmap', 'draw_attention']
