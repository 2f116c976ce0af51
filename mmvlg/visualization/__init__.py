from .attention import FusionAttentionRecorder, attention_heatmap, draw_attention, fusion_text_to_image_attention
from .grounding_visualizer import GroundingVisualizer

__all__ = ['GroundingVisualizer', 'attention_heatmap', 'draw_attention', 'FusionAttentionRecorder',
           'fusion_text_to_image_attention']
