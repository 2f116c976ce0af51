"""X-VLM's text-assignment task (the extra pre-training step before NLVR2): a caption and two images, the caption
belongs to the first image, to the second one or to neither."""
from typing import Optional, Tuple

import torch
from torch import Tensor

#: Labels of the text-assignment task.
LEFT, RIGHT, NEITHER = 0, 1, 2


def text_assignment_pairs(sim: Tensor, ids: Tensor, neither_prob: float = 1.0 / 3.0,
                          generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Draw the image pair of each caption of a batch of image-caption pairs, as the authors' NLVR pre-training.

    For caption ``b`` (of image ``b``), with probability ``1 - neither_prob`` one other image is drawn with
    probability ``softmax(sim[b])`` over the images that are not image ``b`` (a hard negative) and the caption's own
    image goes left (label :data:`LEFT`) or right (:data:`RIGHT`) by a fair coin; otherwise two different other
    images are drawn that way (label :data:`NEITHER`). "Other" means another ``ids`` value: two captions of one
    image are never a negative of each other (the authors exclude only the diagonal, which is the same when the
    ids of a batch are distinct). A caption with a single other image in the batch gets no :data:`NEITHER` pair.

    Args:
        sim (Tensor): (n, n) similarities (logits) between the images of the batch.
        ids (Tensor): (n,) image ids; equal ids show the same image.
        neither_prob (float): Probability of a :data:`NEITHER` pair. Defaults to 1/3.
        generator (torch.Generator, optional): Random generator.

    Returns:
        tuple: ``left`` (n,) and ``right`` (n,) long indices of the two images of each caption's pair and
        ``labels`` (n,) long in {0, 1, 2}.

    Raises:
        ValueError: A caption has no other image in the batch.
    """
    n = len(ids)
    if sim.shape != (n, n):
        raise ValueError(f'text_assignment_pairs: sim must be ({n}, {n}) for {n} ids, got {tuple(sim.shape)}')
    allowed = ids[:, None] != ids[None, :]
    count = allowed.sum(dim=1)
    if n and int(count.min()) == 0:
        raise ValueError('text_assignment_pairs: every caption needs another image in its batch (a batch of '
                         f'{n} samples with {len(torch.unique(ids))} distinct image ids); use larger batches')
    weights = torch.softmax(sim.detach().float().masked_fill(~allowed, float('-inf')), dim=1)
    weights = (weights + 1e-9) * allowed  # every other image stays reachable when the softmax underflows
    device = ids.device
    rand = torch.rand(n, 2, generator=generator, device=generator.device if generator is not None else 'cpu')
    left, right, labels = [], [], []
    for b in range(n):
        own = b
        if float(rand[b, 0]) < neither_prob and int(count[b]) >= 2:
            first, second = torch.multinomial(weights[b], 2, replacement=False, generator=generator).tolist()
            left.append(first)
            right.append(second)
            labels.append(NEITHER)
            continue
        other = int(torch.multinomial(weights[b], 1, generator=generator))
        if float(rand[b, 1]) < 0.5:
            left.append(own)
            right.append(other)
            labels.append(LEFT)
        else:
            left.append(other)
            right.append(own)
            labels.append(RIGHT)
    as_long = dict(dtype=torch.long, device=device)
    return torch.tensor(left, **as_long), torch.tensor(right, **as_long), torch.tensor(labels, **as_long)
