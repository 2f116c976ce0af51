import pytest
import torch
from torch import nn

from mmvlg.models.layers import (
    DetrTransformerDecoderSDPA,
    MultiheadSDPA,
    VLTransformerEncoder,
    grid_points,
    sine_embed_points,
)


def test_sdpa_matches_torch_multihead_attention():
    torch.manual_seed(0)
    ours = MultiheadSDPA(32, 4).eval()
    ref = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    ref.load_state_dict(ours.state_dict())  # same parameter layout
    q, k = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 4:] = True
    out, _ = ours(q, k, k, pad)
    expected, _ = ref(q, k, k, key_padding_mask=pad)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # the explicit path used for attention maps gives the same output and weights that sum to 1
    out2, w = ours(q, k, k, pad, need_weights=True)
    torch.testing.assert_close(out2, out, atol=1e-5, rtol=1e-5)
    assert w.shape == (2, 5, 7)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 5))
    assert torch.all(w[1, :, 4:] == 0)


def test_sdpa_rejects_bad_heads():
    with pytest.raises(ValueError, match='divisible'):
        MultiheadSDPA(30, 4)


def test_encoder_ignores_padding():
    torch.manual_seed(0)
    enc = VLTransformerEncoder(num_layers=2, layer_cfg=dict(embed_dims=16, num_heads=2, feedforward_channels=32,
                                                            dropout=0.0)).eval()
    x, pos = torch.randn(1, 6, 16), torch.randn(1, 6, 16)
    pad = torch.tensor([[False, False, False, False, True, True]])
    out, _ = enc(x, pos, pad)
    x2 = x.clone()
    x2[0, 4:] = 100.0  # values at padded positions must not change the others
    out2, weights = enc(x2, pos, pad, need_weights=True)
    torch.testing.assert_close(out[0, :4], out2[0, :4])
    assert len(weights) == 2 and weights[0].shape == (1, 6, 6)


def test_decoder_shapes():
    dec = DetrTransformerDecoderSDPA(num_layers=3, layer_cfg=dict(embed_dims=16, num_heads=2,
                                                                  feedforward_channels=32))
    out = dec(torch.randn(2, 4, 16), torch.randn(2, 9, 16), torch.randn(2, 9, 16), torch.zeros(2, 9).bool())
    assert out.shape == (3, 2, 4, 16)


def test_constant_grid_queries():
    pts = grid_points(16)
    assert pts.shape == (16, 2)
    ticks = torch.tensor([1, 2, 3, 4]) / 5
    assert torch.allclose(pts[:4, 0], ticks) and torch.allclose(pts[::4, 1], ticks)
    emb = sine_embed_points(pts, 64)
    assert emb.shape == (16, 64)
    assert len({tuple(e.tolist()) for e in emb}) == 16  # all queries differ
    with pytest.raises(ValueError, match='square'):
        grid_points(10)
