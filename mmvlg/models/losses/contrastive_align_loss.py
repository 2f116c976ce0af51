"""MDETR's box-token contrastive alignment loss, a base for region-phrase alignment losses."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from mmvlg.registry import MODELS


@MODELS.register_module()
class ContrastiveAlignLoss(nn.Module):
    r"""Symmetric InfoNCE between query (box, region) embeddings and text-token embeddings
    (MDETR, arXiv:2104.12763, section 2.2.2, "contrastive alignment").

    Both sets of embeddings are L2-normalized and compared by dot product over a temperature. For a query
    :math:`i` with positive tokens :math:`T_i^+` (the tokens of the phrase its box is matched to):

    .. math::

        l_o = \sum_{i \in \text{queries with a positive}} \frac{1}{|T_i^+|} \sum_{j \in T_i^+}
              -\log \frac{\exp(s_{ij} / \tau)}{\sum_k \exp(s_{ik} / \tau)}

    and symmetrically :math:`l_t` for every token with at least one positive query, the softmax running over
    the queries. The loss is ``loss_weight * (l_o + l_t) / 2 / avg_factor``. Padding tokens take part in
    neither softmax (their logits are set to ``-1e4``).

    The module has no parameters: the projections that produce the embeddings belong to the head that uses
    it (:class:`~mmvlg.models.heads.MDETRHead` keeps MDETR's ``contrastive_align_projection_{image,text}``).

    Args:
        temperature (float): :math:`\tau`. Defaults to 0.07 (MDETR).
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self, temperature: float = 0.07, loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'ContrastiveAlignLoss: temperature must be > 0, got {temperature}')
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, query_embeds: Tensor, token_embeds: Tensor, positive_map: Tensor,
                token_mask: Optional[Tensor] = None, avg_factor: Optional[float] = None) -> Tensor:
        """
        Args:
            query_embeds (Tensor): (bs, num_queries, D) projected query embeddings (not yet normalized).
            token_embeds (Tensor): (bs, num_tokens, D) projected token embeddings (not yet normalized).
            positive_map (Tensor): (bs, num_queries, num_tokens) bool, True where token ``j`` belongs to the
                phrase of query ``i``.
            token_mask (Tensor, optional): (bs, num_tokens) bool, True at real tokens. Defaults to all real.
            avg_factor (float, optional): Normalizer (MDETR: the number of ground-truth boxes, averaged over
                the processes). Defaults to the number of queries that have a positive token (at least 1).

        Returns:
            Tensor: The scalar loss.
        """
        q = F.normalize(query_embeds, dim=-1)
        t = F.normalize(token_embeds, dim=-1)
        logits = q @ t.transpose(1, 2) / self.temperature  # (bs, nq, L)
        if token_mask is not None:
            logits = logits.masked_fill(~token_mask[:, None, :], -1e4)
        pos = positive_map.bool()
        pos_logits = logits.masked_fill(~pos, 0)
        box_has = pos.any(2)
        b2t = (-pos_logits.sum(2) / (pos.sum(2) + 1e-6) + logits.logsumexp(2)).masked_fill(~box_has, 0).sum()
        tok_has = pos.any(1)
        t2b = (-pos_logits.sum(1) / (pos.sum(1) + 1e-6) + logits.logsumexp(1)).masked_fill(~tok_has, 0).sum()
        if avg_factor is None:
            avg_factor = max(int(box_has.sum()), 1)
        return (b2t + t2b) / 2 / avg_factor * self.loss_weight
