from .answer_generation_head import AnswerGenerationHead, causal_attention_mask
from .box_regression_head import BoxRegressionHead
from .fiber_head import FIBERHead, GroundingDyHeadModule
from .itc_head import ITCHead
from .itm_head import ITMHead, ids_tensor, itm_pairs, sample_hard_negatives
from .mdetr_head import MDETRHead
from .mlm_head import MLMHead, mask_tokens_by_count
from .token_grounding_head import TokenGroundingHead
from .vqa_head import VQAHead, load_answer_list

__all__ = [
    'MDETRHead', 'TokenGroundingHead', 'FIBERHead', 'GroundingDyHeadModule', 'ITCHead', 'ITMHead',
    'sample_hard_negatives', 'ids_tensor', 'itm_pairs', 'MLMHead', 'mask_tokens_by_count', 'VQAHead',
    'load_answer_list', 'BoxRegressionHead', 'AnswerGenerationHead', 'causal_attention_mask'
]
