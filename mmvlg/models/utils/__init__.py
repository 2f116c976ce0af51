from .box_utils import cell_centres, denormalize_boxes, rescale_boxes
from .class_scores import SCORE_AGGREGATIONS, token_to_class_scores
from .gradcam import CrossAttentionRecorder, gradcam_from_attention, heatmap_to_image, patch_grid, score_proposals
from .image_masks import padding_mask
from .mlm_masking import mask_tokens
from .positive_map import batch_positive_maps, spans_to_positive_map
from .region_masks import (
    box_patch_ranges,
    interpolate_pos_embed,
    interpolate_relative_position_table,
    masked_mean,
    normalize_boxes_to_input,
    region_mask_from_boxes,
    resize_relative_position_tables,
)

__all__ = ['spans_to_positive_map', 'batch_positive_maps', 'mask_tokens', 'token_to_class_scores',
           'SCORE_AGGREGATIONS', 'padding_mask', 'denormalize_boxes', 'rescale_boxes', 'cell_centres',
           'box_patch_ranges', 'region_mask_from_boxes', 'normalize_boxes_to_input', 'masked_mean',
           'interpolate_pos_embed', 'interpolate_relative_position_table', 'resize_relative_position_tables',
           'CrossAttentionRecorder', 'gradcam_from_attention', 'heatmap_to_image', 'patch_grid', 'score_proposals']
