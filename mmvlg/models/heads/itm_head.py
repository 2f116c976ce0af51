"""Image-text matching (ITM) head and the hard-negative sampling from contrastive similarities."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS


def sample_hard_negatives(sim: Tensor, positive_mask: Tensor, generator: Optional[torch.Generator] = None
                          ) -> Tuple[Tensor, Tensor]:
    """For each query (row), draw one negative candidate (column) with probability ``softmax(sim)`` restricted
    to the candidates that are not positives (VLMo/ALBEF's global hard negatives, as FIBER's ITM).

    A positive is never drawn: its weight is exactly 0 (the authors add 1e-9 to every weight, which can pick
    the positive itself when the softmax underflows). Rows whose candidates are all positives (e.g. a batch of
    captions of one image) get no negative.

    Args:
        sim (Tensor): (n_query, n_cand) similarities (logits).
        positive_mask (Tensor): (n_query, n_cand) bool, True where the candidate is a positive of the query.
        generator (torch.Generator, optional): Random generator.

    Returns:
        tuple: ``index`` (n_query,) long, the drawn candidate per row (0 where there is none), and ``valid``
        (n_query,) bool, whether the row has a negative.
    """
    sim = sim.detach().float()
    allowed = ~positive_mask.bool()
    valid = allowed.any(dim=1)
    logits = sim.masked_fill(~allowed, float('-inf'))
    weights = torch.softmax(logits.masked_fill(~valid[:, None], 0.0), dim=1)
    # keep every allowed candidate reachable (softmax may underflow), never a positive
    weights = (weights + 1e-9) * allowed
    weights[~valid] = 1.0
    index = torch.multinomial(weights, 1, generator=generator)[:, 0]
    return index.masked_fill(~valid, 0), valid


@MODELS.register_module()
class ITMHead(BaseModule):
    """Image-text matching: a linear classifier (match / no match) on the fused ``[text_cls; image_cls]``
    features of FIBER's fusion encoder, trained with cross entropy on positives and hard negatives.

    Args:
        in_dims (int): Width of the fused features (2 x 768 in FIBER).
        loss_weight (float): Weight of ``loss_itm``. Defaults to 1.
    """

    def __init__(self, in_dims: int, loss_weight: float = 1.0, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.fc = nn.Linear(in_dims, 2)
        self.loss_weight = loss_weight

    def forward(self, cls_feats: Tensor) -> Tensor:
        """(n, 2) logits (no match, match) from (n, in_dims) features."""
        return self.fc(cls_feats)

    def score(self, cls_feats: Tensor) -> Tensor:
        """(n,) matching score: the match logit (the authors' ``rank_output``)."""
        return self.fc(cls_feats)[:, 1]

    def loss(self, cls_feats: Tensor, labels: Tensor) -> Dict[str, Tensor]:
        """``loss_itm`` (cross entropy) and ``acc_itm`` from (n, in_dims) features and (n,) 0/1 labels."""
        logits = self(cls_feats)
        loss = F.cross_entropy(logits, labels.long())
        acc = (logits.argmax(dim=1) == labels).float().mean().detach()
        return dict(loss_itm=self.loss_weight * loss, acc_itm=acc)
