from .attention import MultiheadSDPA
from .positional_encoding import grid_points, sine_embed_points
from .transformer import FFN, DetrDecoderLayer, DetrTransformerDecoderSDPA, VLEncoderLayer, VLTransformerEncoder

__all__ = ['MultiheadSDPA', 'VLEncoderLayer', 'DetrDecoderLayer', 'VLTransformerEncoder',
           'DetrTransformerDecoderSDPA', 'FFN', 'grid_points', 'sine_embed_points']
