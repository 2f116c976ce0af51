import math

import pytest
import torch

from mmvlg.registry import MODELS
from mmvlg.utils import register_all_modules

register_all_modules()


def _case():
    # two queries and three tokens (the last one padding) in 2-D; the norms do not matter (cosine similarity)
    queries = torch.tensor([[[3., 0.], [0., 0.5]]])
    tokens = torch.tensor([[[1., 0.], [0., 2.], [1., 1.]]])
    mask = torch.tensor([[True, True, False]])
    return queries, tokens, mask


def test_contrastive_align_loss_one_positive():
    """Query 0 <-> token 0 only: both directions give -s + log(e^s + e^0) with s = 1 / temperature."""
    loss = MODELS.build(dict(type='ContrastiveAlignLoss', temperature=0.5, loss_weight=2.0))
    q, t, mask = _case()
    pos = torch.zeros(1, 2, 3, dtype=torch.bool)
    pos[0, 0, 0] = True
    s = 1 / 0.5
    expected = 2.0 * (2 * (-s + math.log(math.exp(s) + 1))) / 2 / 1
    torch.testing.assert_close(loss(q, t, pos, mask), torch.tensor(expected))
    torch.testing.assert_close(loss(q, t, pos, mask, avg_factor=4), torch.tensor(expected / 4))


def test_contrastive_align_loss_two_positives_and_padding():
    """Query 0 <-> tokens 0 and 1 (temperature 1): box-to-token averages the two positives,
    token-to-box adds one term per token; the padded token takes part in no softmax."""
    loss = MODELS.build(dict(type='ContrastiveAlignLoss', temperature=1.0))
    q, t, mask = _case()
    pos = torch.zeros(1, 2, 3, dtype=torch.bool)
    pos[0, 0, :2] = True
    lse = math.log(math.e + 1)
    b2t = -(1 + 0) / 2 + lse  # query 0: logits (1, 0) over the real tokens
    t2b = (-1 + lse) + (-0 + lse)  # token 0: logits (1, 0) over the queries; token 1: (0, 1)
    torch.testing.assert_close(loss(q, t, pos, mask), torch.tensor((b2t + t2b) / 2), rtol=1e-5, atol=1e-6)
    # the padding changes the value when it is not masked
    assert not torch.allclose(loss(q, t, pos), loss(q, t, pos, mask))


def test_contrastive_align_loss_without_positives_is_zero_with_gradient():
    loss = MODELS.build(dict(type='ContrastiveAlignLoss'))
    q, t, mask = _case()
    q.requires_grad_(True)
    value = loss(q, t, torch.zeros(1, 2, 3, dtype=torch.bool), mask)
    assert value.item() == 0
    value.backward()
    with pytest.raises(ValueError, match='temperature'):
        MODELS.build(dict(type='ContrastiveAlignLoss', temperature=0))
