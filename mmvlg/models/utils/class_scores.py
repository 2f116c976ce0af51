"""Token grounding scores -> class scores (object detection as grounding)."""
from typing import Sequence

import torch
from torch import Tensor

SCORE_AGGREGATIONS = ('mean', 'max')


def token_to_class_scores(token_scores: Tensor, class_tokens: Sequence[Sequence[int]], agg: str = 'mean') -> Tensor:
    """Aggregate per-token probabilities into per-class probabilities, as GLIP/FIBER's
    ``convert_grounding_to_od_logits`` (``SCORE_AGG`` ``MEAN``, FIBER's default, or ``MAX``).

    Args:
        token_scores (Tensor): (..., L) probabilities (sigmoid of the grounding logits) per token.
        class_tokens (Sequence[Sequence[int]]): For each of the C classes, the indices of its tokens in the
            prompt; a class with no token (not in the prompt) scores 0.
        agg (str): ``'mean'`` or ``'max'`` over a class's tokens.

    Returns:
        Tensor: (..., C) class probabilities.
    """
    if agg not in SCORE_AGGREGATIONS:
        raise ValueError(f'score aggregation must be one of {SCORE_AGGREGATIONS}, got {agg!r}')
    num_tokens = token_scores.shape[-1]
    out = token_scores.new_zeros(*token_scores.shape[:-1], len(class_tokens))
    if agg == 'mean':
        weights = token_scores.new_zeros(num_tokens, len(class_tokens))
        for c, tokens in enumerate(class_tokens):
            if len(tokens):
                idx = torch.as_tensor(list(tokens), dtype=torch.long, device=weights.device)
                weights[idx, c] = 1.0 / len(tokens)
        return token_scores @ weights
    for c, tokens in enumerate(class_tokens):
        if len(tokens):
            idx = torch.as_tensor(list(tokens), dtype=torch.long, device=token_scores.device)
            out[..., c] = token_scores.index_select(-1, idx).max(-1)[0]
    return out
