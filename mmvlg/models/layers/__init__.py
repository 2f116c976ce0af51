from .attention import MultiheadSDPA
from .cross_modal_pooler import CrossModalPooler, FirstTokenPooler, masked_mean
from .gated_cross_attention import GatedCrossAttention
from .positional_encoding import grid_points, sine_embed_points
from .transformer import FFN, DetrDecoderLayer, DetrTransformerDecoderSDPA, VLEncoderLayer, VLTransformerEncoder

__all__ = [
    'MultiheadSDPA', 'VLEncoderLayer', 'DetrDecoderLayer', 'VLTransformerEncoder', 'DetrTransformerDecoderSDPA',
    'FFN', 'grid_points', 'sine_embed_points', 'GatedCrossAttention', 'CrossModalPooler', 'FirstTokenPooler',
    'masked_mean'
]
