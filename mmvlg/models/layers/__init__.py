from .attention import MultiheadSDPA
from .cross_modal_pooler import CrossModalPooler, FirstTokenPooler, masked_mean
from .dual_stream_pooler import DualStreamPooler, pool_tokens
from .gated_cross_attention import GatedCrossAttention
from .mlp import MLPBlock, build_projection
from .positional_encoding import grid_points, sine_embed_points
from .query_generators import (
    BaseQueryGenerator,
    ConstantGridQueries,
    LearnedQueries,
    SiRiGridQueries,
    TokenQueries,
    grid_reference_boxes,
)
from .transformer import FFN, DetrDecoderLayer, DetrTransformerDecoderSDPA, VLEncoderLayer, VLTransformerEncoder
from .visual_dictionary import VisualDictionary

__all__ = [
    'MultiheadSDPA', 'VLEncoderLayer', 'DetrDecoderLayer', 'VLTransformerEncoder', 'DetrTransformerDecoderSDPA',
    'FFN', 'grid_points', 'sine_embed_points', 'GatedCrossAttention', 'CrossModalPooler', 'FirstTokenPooler',
    'masked_mean', 'BaseQueryGenerator', 'LearnedQueries', 'ConstantGridQueries', 'SiRiGridQueries', 'TokenQueries',
    'grid_reference_boxes',
    'DualStreamPooler', 'pool_tokens', 'MLPBlock', 'build_projection', 'VisualDictionary'
]
