"""Image-text matching (ITM) head, the ITM batch (positives and hard negatives drawn from contrastive
similarities) and the image ids that say which pairs are positives."""
import zlib
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures import SampleList
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS

from ..layers.mlp import MLPBlock


def ids_tensor(data_samples: SampleList, key: str = 'img_id', device=None) -> Tensor:
    """(bs,) int64 ids from a metainfo key; non-integer ids (e.g. image paths) are hashed with CRC-32, the same
    in every process. Samples without the key get distinct negative ids."""
    out = []
    for b, ds in enumerate(data_samples):
        v = ds.metainfo.get(key)
        if v is None:
            out.append(-1 - b)
        elif isinstance(v, int):
            out.append(v)
        else:
            out.append(zlib.crc32(str(v).encode()) + (1 << 40))
    return torch.tensor(out, dtype=torch.long, device=device)


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


def itm_pairs(sim: Optional[Tensor], img_ids: Tensor, generator: Optional[torch.Generator] = None
              ) -> Tuple[Tensor, Tensor, Tensor]:
    """The ITM batch of VLMo/ALBEF/FIBER: the bs positive pairs, then (image i, hard negative text) and (hard
    negative image, text i) for every i that has a negative (:func:`sample_hard_negatives`; pairs with equal
    image ids are positives of each other).

    Args:
        sim (Tensor, optional): (bs, bs) image-to-text similarities (uniform sampling when None).
        img_ids (Tensor): (bs,) image ids; equal ids are positives (:func:`ids_tensor`).
        generator (torch.Generator, optional): Random generator.

    Returns:
        tuple: image indices, text indices and 0/1 labels (1: a match), each (n,) long, bs <= n <= 3 bs.
    """
    bs = len(img_ids)
    ar = torch.arange(bs, device=img_ids.device)
    pos = img_ids[:, None] == img_ids[None, :]
    if sim is None:
        sim = torch.zeros(bs, bs, device=img_ids.device)
    neg_text, has_text = sample_hard_negatives(sim, pos, generator)  # a text for each image
    neg_img, has_img = sample_hard_negatives(sim.t(), pos.t(), generator)  # an image for each text
    img_idx = torch.cat([ar, ar[has_text], neg_img[has_img]])
    text_idx = torch.cat([ar, neg_text[has_text], ar[has_img]])
    labels = torch.cat([torch.ones(bs, device=ar.device), torch.zeros(len(img_idx) - bs, device=ar.device)])
    return img_idx, text_idx, labels.long()


@MODELS.register_module()
class ITMHead(BaseModule):
    """Image-text matching: a classifier (no match / match) on fused features, trained with cross entropy on
    positives and hard negatives (:func:`itm_pairs`): a linear layer on the ``[text_cls; image_cls]`` features
    of FIBER's fusion encoder, or an :class:`~mmvlg.models.layers.MLPBlock` (X-VLM's ``build_mlp`` on the cross
    encoder's first token: ``hidden_dims=2 * in_dims``).

    Args:
        in_dims (int): Width of the fused features (2 x 768 in FIBER).
        loss_weight (float): Weight of ``loss_itm``. Defaults to 1.
        hidden_dims (int, optional): With a width, the classifier is ``MLPBlock(in_dims, hidden_dims, 2)``
            (Linear-LN-GELU-Linear); None: one ``Linear(in_dims, 2)`` (FIBER). The classifier is ``fc``.
        bias (bool): Whether the one-Linear classifier has a bias. Defaults to True (False: SOHO's released
            ``match_class``); the MLP always has its biases (``bias=False`` with ``hidden_dims`` is an error).
    """

    def __init__(self, in_dims: int, loss_weight: float = 1.0, hidden_dims: Optional[int] = None,
                 bias: bool = True, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not bias and hidden_dims is not None:
            raise ValueError(f'ITMHead: bias=False applies to the one-Linear classifier, not to the MLP '
                             f'(hidden_dims={hidden_dims})')
        self.fc = nn.Linear(in_dims, 2, bias=bias) if hidden_dims is None else MLPBlock(in_dims, hidden_dims, 2)
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
