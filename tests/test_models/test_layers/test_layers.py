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


def test_encoder_padded_sequence_equals_the_unpadded_one_alone():
    """A padded sequence in a batch gives, at its real positions, what the sequence alone gives; the other
    sequence of the batch (no padding) is unaffected too."""
    torch.manual_seed(0)
    enc = VLTransformerEncoder(num_layers=2, layer_cfg=dict(embed_dims=16, num_heads=2, feedforward_channels=32,
                                                            dropout=0.0)).eval()
    x, pos = torch.randn(2, 7, 16), torch.randn(2, 7, 16)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 4:] = True
    with torch.no_grad():
        out, _ = enc(x, pos, pad)
        alone, _ = enc(x[1:, :4], pos[1:, :4], torch.zeros(1, 4, dtype=torch.bool))
        full, _ = enc(x[:1], pos[:1], None)
    torch.testing.assert_close(out[1, :4], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[0], full[0], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(out).all()  # padded positions still attend to the real ones


def test_decoder_shapes():
    dec = DetrTransformerDecoderSDPA(num_layers=3, layer_cfg=dict(embed_dims=16, num_heads=2,
                                                                  feedforward_channels=32))
    out = dec(torch.randn(2, 4, 16), torch.randn(2, 9, 16), torch.randn(2, 9, 16), torch.zeros(2, 9).bool())
    assert out.shape == (3, 2, 4, 16)


def test_decoder_ignores_padded_memory():
    """Values at padded memory positions change nothing, and the padded memory gives what the unpadded
    memory alone gives (with and without an initial query content)."""
    torch.manual_seed(0)
    dec = DetrTransformerDecoderSDPA(num_layers=2, layer_cfg=dict(embed_dims=16, num_heads=2,
                                                                  feedforward_channels=32, dropout=0.0)).eval()
    dec.init_weights()
    query, content = torch.randn(1, 3, 16), torch.randn(1, 3, 16)
    memory, memory_pos = torch.randn(1, 9, 16), torch.randn(1, 9, 16)
    mask = torch.zeros(1, 9, dtype=torch.bool)
    mask[0, 6:] = True
    changed, changed_pos = memory.clone(), memory_pos.clone()
    changed[0, 6:], changed_pos[0, 6:] = 1e3, -1e3
    with torch.no_grad():
        for c in (None, content):
            out = dec(query, memory, memory_pos, mask, c)
            torch.testing.assert_close(dec(query, changed, changed_pos, mask, c), out)
            alone = dec(query, memory[:, :6], memory_pos[:, :6], torch.zeros(1, 6, dtype=torch.bool), c)
            torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)
        # without the mask, the padded values do change the output (the test above is not vacuous)
        assert not torch.allclose(dec(query, changed, changed_pos, None), dec(query, memory, memory_pos, None))


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
