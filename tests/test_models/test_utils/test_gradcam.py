"""Grad-CAM helpers: proposal scoring on a hand-made map (the expected proposal wins, the sqrt(area)
normalization, boxes at and past the borders), Grad-CAM of attention maps, the patch grid, the map to the
original image, and the attention recorder on a Hugging Face cross-attention block."""
import math

import pytest
import torch

from mmvlg.models.utils import (
    CrossAttentionRecorder,
    gradcam_from_attention,
    heatmap_to_image,
    patch_grid,
    score_proposals,
)


def _map():
    """A 20 x 30 map: a bright 4 x 4 blob at rows 4-7, columns 20-23, a faint background of 0.01."""
    m = torch.full((20, 30), 0.01)
    m[4:8, 20:24] = 1.0
    return m


def test_the_box_on_the_blob_wins():
    boxes = torch.tensor([[0., 0., 10., 10.],  # background
                          [19., 3., 25., 9.],  # around the blob
                          [0., 0., 30., 20.],  # the whole image: more mass, but a large area
                          [20., 4., 22., 6.]])  # a quarter of the blob
    scores = score_proposals(_map(), boxes)
    assert int(scores.argmax()) == 1
    # in-box sum / sqrt(area), by hand
    inside = 16 * 1.0 + (36 - 16) * 0.01
    assert math.isclose(float(scores[1]), inside / math.sqrt(36), rel_tol=1e-5)
    total = 16 * 1.0 + (600 - 16) * 0.01
    assert math.isclose(float(scores[2]), total / math.sqrt(600), rel_tol=1e-5)


def test_sqrt_area_normalization_and_alpha():
    m = torch.ones(10, 10)
    small, large = torch.tensor([[0., 0., 2., 2.]]), torch.tensor([[0., 0., 8., 8.]])
    # a uniform map: the sum grows with the area, the score with its square root
    assert math.isclose(float(score_proposals(m, small)), 4 / 2, rel_tol=1e-6)
    assert math.isclose(float(score_proposals(m, large)), 64 / 8, rel_tol=1e-6)
    # alpha = 1: the mean inside the box, equal for both
    assert math.isclose(float(score_proposals(m, small, alpha=1.0)), float(score_proposals(m, large, alpha=1.0)))
    # alpha = 0: the plain sum
    assert math.isclose(float(score_proposals(m, large, alpha=0.0)), 64.0, rel_tol=1e-6)


def test_boxes_at_and_past_the_borders():
    m = _map()
    boxes = torch.tensor([[0., 0., 30., 20.],  # exactly the image
                          [-5., -5., 35., 25.],  # past every border: only the image part counts, the own area
                          [25., 15., 40., 30.],  # partly outside, bottom right
                          [31., 0., 40., 10.],  # wholly outside: 0
                          [5., 5., 5., 9.],  # zero width: 0
                          [20.7, 4.2, 23.9, 7.9]])  # fractional: pixels [int(x1), int(x2)) as the authors slice
    scores = score_proposals(m, boxes)
    full = float(m.sum())
    assert math.isclose(float(scores[0]), full / math.sqrt(600), rel_tol=1e-5)
    assert math.isclose(float(scores[1]), full / math.sqrt(40 * 30), rel_tol=1e-5)
    assert math.isclose(float(scores[2]), float(m[15:, 25:].sum()) / math.sqrt(15 * 15), rel_tol=1e-5)
    assert float(scores[3]) == 0.0 and float(scores[4]) == 0.0
    area = (23.9 - 20.7) * (7.9 - 4.2)
    assert math.isclose(float(scores[5]), float(m[4:7, 20:23].sum()) / math.sqrt(area), rel_tol=1e-5)
    assert torch.isfinite(scores).all()


def test_gradcam_from_attention_by_hand():
    torch.manual_seed(0)
    attn = torch.rand(2, 3, 4, 1 + 6)  # (bs, heads, L, 1 + 2 x 3)
    grad = torch.randn(2, 3, 4, 1 + 6)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    cam = gradcam_from_attention(attn, grad, mask, (2, 3))
    assert cam.shape == (2, 2, 3) and bool((cam >= 0).all())
    expected = (attn * grad.clamp(min=0))[..., 1:].mean(1)
    expected0 = expected[0, :3].mean(0).reshape(2, 3)  # the padded token left out
    torch.testing.assert_close(cam[0], expected0)
    torch.testing.assert_close(cam[1], expected[1].mean(0).reshape(2, 3))
    with pytest.raises(ValueError, match='grid'):
        gradcam_from_attention(attn, grad, mask, (2, 2))


def test_patch_grid_and_heatmap_to_image():
    assert patch_grid(24, (32, 48)) == (4, 6)
    assert patch_grid(144, (384, 384)) == (12, 12)
    with pytest.raises(ValueError, match='grid'):
        patch_grid(7, (32, 32))
    heat = torch.zeros(4, 6)
    heat[0, 0] = 1.0  # top-left patch of a 32 x 48 padded input whose valid part is 32 x 40
    out = heatmap_to_image(heat, (32, 48), (32, 40), (64, 80), mode='nearest')
    assert out.shape == (64, 80)
    assert float(out[:16, :16].min()) == 1.0 and float(out[16:, :].max()) == 0.0 and float(out[:, 16:].max()) == 0


def test_recorder_returns_the_probabilities_with_their_gradients():
    from mmvlg.registry import MODELS
    from mmvlg.utils import register_all_modules
    register_all_modules()
    lm = MODELS.build(dict(
        type='HFTextEncoder', max_length=16, tokenizer=dict(type='word', vocab='synthref'),
        model_config=dict(model_type='bert', hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64), cross_attention=dict(start=1, context_dims=24))).eval()
    tok = lm.tokenize(['the red circle', 'the big blue square'])
    context = torch.randn(2, 5, 24)
    hidden = lm.embed(tok['input_ids'])
    ref = lm.forward_layers(hidden, tok['attention_mask'], context=context)
    module = lm.cross_attns['1'].self
    before = module.config._attn_implementation
    with CrossAttentionRecorder(module) as rec:
        out = lm.forward_layers(hidden, tok['attention_mask'], context=context)
    assert module.config._attn_implementation == before  # restored; the shared config never changed
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)  # the outputs are unchanged
    probs = rec.maps[0]
    assert probs.shape == (2, 2, tok['input_ids'].shape[1], 5)
    torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))
    out[:, 0].sum().backward()
    assert rec.grads[0] is not None and rec.grads[0].shape == probs.shape
