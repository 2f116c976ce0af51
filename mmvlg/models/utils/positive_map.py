"""Character spans -> token positive maps, from a tokenizer's offsets."""
from typing import List, Sequence

import torch
from torch import Tensor

Span = Sequence[int]


def spans_to_positive_map(tokens_positive: Sequence[Sequence[Span]], offsets: Tensor, num_tokens: int,
                          normalize: bool = True, text: str = '') -> Tensor:
    """Build the box-to-token map of MDETR/GLIP: token j is positive for box i when its characters overlap
    one of box i's [start, end) character spans.

    Args:
        tokens_positive: For each box, its list of [start, end) character spans.
        offsets (Tensor): (L, 2) [start, end) characters of each token; special/padding tokens are (0, 0).
        num_tokens (int): Width of the map (>= L; columns past L stay zero).
        normalize (bool): Make every row sum to 1 (MDETR's soft targets).
        text (str): The caption, only for error messages.

    Returns:
        Tensor: (num_boxes, num_tokens) float.

    Raises:
        ValueError: A box whose spans cover no token (e.g. cut off by truncation).
    """
    n = len(tokens_positive)
    pmap = torch.zeros(n, num_tokens, device=offsets.device)
    if n == 0:
        return pmap
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = ends > starts
    L = min(offsets.shape[0], num_tokens)
    for i, spans in enumerate(tokens_positive):
        if len(spans) == 0:
            raise ValueError(f'box {i} of text {text!r} has no tokens_positive span')
        sp = torch.as_tensor(spans, dtype=offsets.dtype, device=offsets.device).view(-1, 2)
        hit = (ends[None, :L] > sp[:, :1]) & (starts[None, :L] < sp[:, 1:]) & real[None, :L]
        pmap[i, :L] = hit.any(0).float()
    if normalize:
        sums = pmap.sum(-1, keepdim=True)
        if (sums == 0).any():
            bad = int((sums[:, 0] == 0).nonzero()[0])
            raise ValueError(f'the spans {list(tokens_positive[bad])} of box {bad} cover no token of text '
                             f'{text!r} (truncated by max_length?)')
        pmap = pmap / sums
    return pmap


def batch_positive_maps(tokens_positive: List[Sequence[Sequence[Span]]], offsets: Tensor, num_tokens: int,
                        texts: Sequence[str] = ()) -> List[Tensor]:
    """:func:`spans_to_positive_map` for every sample of a batch (offsets (bs, L, 2))."""
    return [spans_to_positive_map(tp, offsets[b], num_tokens, text=texts[b] if texts else '')
            for b, tp in enumerate(tokens_positive)]
