from .box_utils import cell_centres, denormalize_boxes, rescale_boxes
from .class_scores import SCORE_AGGREGATIONS, token_to_class_scores
from .image_masks import padding_mask
from .mlm_masking import mask_tokens
from .positive_map import batch_positive_maps, spans_to_positive_map

__all__ = ['spans_to_positive_map', 'batch_positive_maps', 'mask_tokens', 'token_to_class_scores',
           'SCORE_AGGREGATIONS', 'padding_mask', 'denormalize_boxes', 'rescale_boxes', 'cell_centres']
