"""BERT-style token masking for masked language modelling."""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor


def mask_tokens(input_ids: Tensor, attention_mask: Tensor, mask_token_id: int, special_ids: Sequence[int],
                vocab_size: int, mask_prob: float = 0.15, replace_prob: float = 0.8, random_prob: float = 0.1,
                generator: Optional[torch.Generator] = None, ignore_index: int = -100) -> Tuple[Tensor, Tensor]:
    """Choose ``mask_prob`` of the real, non-special tokens as MLM targets; of those, replace ``replace_prob``
    by the mask token, ``random_prob`` by a random non-special token and keep the rest (BERT's 80/10/10).

    Each text with at least one maskable token gets at least one target, so no sample of a batch is without an
    MLM loss term by chance (short texts would often be at 15%).

    Args:
        input_ids (Tensor): (bs, L) token ids.
        attention_mask (Tensor): (bs, L), 1 at real tokens, 0 at padding.
        mask_token_id (int): The tokenizer's mask token.
        special_ids (Sequence[int]): Ids never chosen as targets nor drawn as random replacements
            (``[CLS]``/``<s>``, ``[SEP]``/``</s>``, padding, mask, unknown, ...).
        vocab_size (int): Size of the vocabulary random replacements are drawn from.
        mask_prob (float): Fraction of tokens chosen as targets. Defaults to 0.15.
        replace_prob (float): Of the targets, the fraction replaced by the mask token. Defaults to 0.8.
        random_prob (float): Of the targets, the fraction replaced by a random token. Defaults to 0.1.
        generator (torch.Generator, optional): Random generator (on ``input_ids``' device).
        ignore_index (int): Label of the non-target positions. Defaults to -100.

    Returns:
        tuple: The masked ids (bs, L) and the labels (bs, L): the original id at targets, ``ignore_index``
        elsewhere.
    """
    if not 0 < mask_prob <= 1 or replace_prob + random_prob > 1:
        raise ValueError(f'mask_tokens: need 0 < mask_prob <= 1 and replace_prob + random_prob <= 1, got '
                         f'{mask_prob}, {replace_prob}, {random_prob}')
    device = input_ids.device
    special = torch.zeros(max(vocab_size, int(input_ids.max()) + 1), dtype=torch.bool, device=device)
    special[torch.as_tensor(list(special_ids), dtype=torch.long, device=device)] = True
    maskable = attention_mask.bool() & ~special[input_ids]

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device=device)

    scores = rand(*input_ids.shape).masked_fill(~maskable, 2.0)
    targets = (scores < mask_prob) & maskable
    # at least one target per text that has a maskable token: its lowest-scored one
    first = torch.zeros_like(targets).scatter_(1, scores.argmin(dim=1, keepdim=True), True) & maskable
    targets |= first
    labels = input_ids.masked_fill(~targets, ignore_index)

    u = rand(*input_ids.shape)
    to_mask = targets & (u < replace_prob)
    to_random = targets & (u >= replace_prob) & (u < replace_prob + random_prob)
    allowed = (~special[:vocab_size]).nonzero()[:, 0]
    random_ids = allowed[torch.randint(len(allowed), input_ids.shape, generator=generator, device=device)]
    masked = input_ids.masked_fill(to_mask, mask_token_id)
    masked = torch.where(to_random, random_ids, masked)
    return masked, labels
