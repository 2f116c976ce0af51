import pytest
import torch
from mmdet.structures import DetDataSample
from torch import nn

from mmvlg.models.layers import grid_points, grid_reference_boxes, sine_embed_points
from mmvlg.models.layers.positional_encoding import siri_grid_query_embed
from mmvlg.registry import MODELS
from mmvlg.utils import register_all_modules

register_all_modules()


def _enc(bs=2, n=4, c=8, dtype=torch.float32):
    return dict(memory=torch.randn(bs, n + 3, c, dtype=dtype), memory_mask=torch.zeros(bs, n + 3, dtype=torch.bool))


def test_learned_queries_draw_as_nn_embedding():
    torch.manual_seed(0)
    gen = MODELS.build(dict(type='LearnedQueries', num_queries=4, embed_dims=8))
    torch.manual_seed(0)
    ref = nn.Embedding(4, 8)
    torch.testing.assert_close(gen.weight.data, ref.weight.data)
    assert list(gen.state_dict()) == ['weight']
    out = gen(_enc(dtype=torch.float64))
    assert out['query_pos'].shape == (2, 4, 8) and out['query_pos'].dtype == torch.float64
    assert out['query_content'] is None and out['reference'] is None
    out['query_pos'].sum().backward()
    assert gen.weight.grad is not None
    before = gen.weight.detach().clone()
    gen.reset_parameters()  # what SiRi's fresh re-initialization calls
    assert not torch.equal(before, gen.weight)


def test_constant_grid_queries():
    gen = MODELS.build(dict(type='ConstantGridQueries', num_queries=4, embed_dims=8, with_reference=True))
    assert len(gen.state_dict()) == 0  # constant, not saved
    out = gen(_enc())
    torch.testing.assert_close(out['query_pos'][1], sine_embed_points(grid_points(4), 8))
    # each reference box sits on its grid point, with the grid spacing as sides
    torch.testing.assert_close(out['reference'], torch.tensor([[1, 1, 1, 1], [2, 1, 1, 1], [1, 2, 1, 1],
                                                               [2, 2, 1, 1]]) / 3)
    torch.testing.assert_close(grid_reference_boxes(4), out['reference'])
    assert MODELS.build(dict(type='ConstantGridQueries', num_queries=4, embed_dims=8))(_enc())['reference'] is None
    with pytest.raises(ValueError, match='square'):
        MODELS.build(dict(type='ConstantGridQueries', num_queries=5, embed_dims=8))


def test_siri_grid_queries_equal_the_layer_norm_of_the_released_embedding():
    gen = MODELS.build(dict(type='SiRiGridQueries', num_queries=16, embed_dims=8))
    assert sorted(gen.state_dict()) == ['bias', 'weight']  # as the LayerNorm aux_query_norm of the checkpoints
    with torch.no_grad():
        gen.weight.uniform_(), gen.bias.uniform_()
    norm = nn.LayerNorm(8)
    norm.load_state_dict(gen.state_dict())
    out = gen(_enc())
    torch.testing.assert_close(out['query_pos'][0], norm(siri_grid_query_embed(16, 8)))
    assert out['reference'] is None


def test_token_queries_pick_the_best_tokens():
    """A 2 x 2 token grid over a 64 x 64 input; the second image is 32 x 64 (its bottom row is padding)."""
    gen = MODELS.build(dict(type='TokenQueries', num_queries=2, embed_dims=8, box_size=0.3))
    enc = _enc(n=4)
    enc.update(num_img_tokens=4, feat_shape=(2, 2), input_shape=(64, 64))
    enc['memory'].requires_grad_(True)
    enc['memory_mask'][1, 2:4] = True
    scores = torch.tensor([[0., 3., 1., 2.], [1., 0., 9., 9.]])  # the padded tokens of image 1 score highest
    samples = [DetDataSample(metainfo=dict(img_shape=(64, 64))), DetDataSample(metainfo=dict(img_shape=(32, 64)))]
    out = gen(enc, samples, token_scores=scores)
    # image 0: tokens 1 (x 48, y 16) then 3 (48, 48); image 1: tokens 0 (16, 16) then 1 (48, 16), y over 32
    centres = torch.tensor([[[0.75, 0.25], [0.75, 0.75]], [[0.25, 0.5], [0.75, 0.5]]])
    torch.testing.assert_close(out['reference'][..., :2], centres)
    torch.testing.assert_close(out['reference'][..., 2:], torch.full((2, 2, 2), 0.3))
    torch.testing.assert_close(out['query_pos'], sine_embed_points(centres, 8))
    torch.testing.assert_close(out['query_content'][0], enc['memory'][0, [1, 3]])
    torch.testing.assert_close(out['query_content'][1], enc['memory'][1, [0, 1]])
    out['query_content'].sum().backward()  # the content carries the encoder's gradient
    assert enc['memory'].grad[:, :4].abs().sum() > 0
    with pytest.raises(ValueError, match='fewer than num_queries'):
        MODELS.build(dict(type='TokenQueries', num_queries=5, embed_dims=8))(enc, samples, token_scores=scores)
