import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmvlg.models.heads import TokenGroundingHead
from mmvlg.registry import MODELS
from mmvlg.testing import demo_grounding_batch, tiny_mdetr_config
from mmvlg.utils import register_all_modules

register_all_modules()


def _sample(boxes):
    ds = DetDataSample()
    ds.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
                                   labels=torch.zeros(len(boxes), dtype=torch.long))
    return ds


def test_targets_cover_the_cells_inside_the_box():
    # 4x4 tokens over a 64x64 input: cell centres at 8, 24, 40, 56.
    target, valid = TokenGroundingHead.targets([_sample([[0., 0., 30., 30.]])], (4, 4), (64, 64), 'cpu')
    expected = torch.zeros(4, 4)
    expected[:2, :2] = 0.25
    assert valid.tolist() == [True]
    assert torch.allclose(target.view(4, 4), expected)


def test_a_box_between_cell_centres_gets_the_cell_of_its_centre():
    target, _ = TokenGroundingHead.targets([_sample([[40., 18., 46., 22.]])], (4, 4), (64, 64), 'cpu')
    assert target.view(4, 4)[1, 2] == 1 and target.sum() == 1


def test_images_without_boxes_do_not_count():
    head = TokenGroundingHead(embed_dims=8)
    samples = [_sample([[0., 0., 30., 30.]]), _sample([])]
    memory = torch.randn(2, 16, 8)
    padding = torch.zeros(2, 16, dtype=torch.bool)
    loss_both = head.loss(memory, padding, samples, (4, 4), (64, 64))['loss_token_grounding']
    loss_one = head.loss(memory[:1], padding[:1], samples[:1], (4, 4), (64, 64))['loss_token_grounding']
    assert torch.allclose(loss_both, loss_one)


def test_padding_tokens_get_no_probability_and_the_loss_falls_with_the_right_score():
    head = TokenGroundingHead(embed_dims=4)
    samples = [_sample([[0., 0., 30., 30.]])]
    padding = torch.zeros(1, 16, dtype=torch.bool)
    padding[0, 12:] = True
    memory = torch.zeros(1, 16, 4)
    base = head.loss(memory, padding, samples, (4, 4), (64, 64))['loss_token_grounding']
    assert torch.isclose(base, torch.log(torch.tensor(12.)))  # uniform over the 12 real tokens
    with torch.no_grad():
        head.score.weight.zero_()
        head.score.bias.zero_()
        head.score.weight[0, 0] = 5.
    memory[0, [0, 1, 4, 5], 0] = 1.  # the four target cells
    assert head.loss(memory, padding, samples, (4, 4), (64, 64))['loss_token_grounding'] < base


def test_mdetr_with_token_grounding_head_trains_and_predicts_the_same_way():
    torch.manual_seed(0)
    cfg = tiny_mdetr_config()
    cfg['token_grounding_head'] = dict(type='TokenGroundingHead', embed_dims=32)
    model = MODELS.build(cfg)
    model.init_weights()
    batch = demo_grounding_batch(2)
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert losses['loss_token_grounding'] > 0
    losses['loss_token_grounding'].backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    # inference does not use it: same outputs as the model without the head, with the same weights
    plain = MODELS.build(tiny_mdetr_config())
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith('token_grounding')})
    model.eval()
    plain.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        a = model(**data, mode='tensor')
        b = plain(**data, mode='tensor')
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_token_queries_start_at_the_best_scored_tokens():
    torch.manual_seed(0)
    cfg = tiny_mdetr_config(num_queries=4)
    cfg['token_grounding_head'] = dict(type='TokenGroundingHead', embed_dims=32)
    cfg['token_queries'] = dict(box_size=0.25)
    model = MODELS.build(cfg)
    model.init_weights()
    batch = demo_grounding_batch(2, image_shapes=[(64, 64), (64, 64)])
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.token_grounding_head.score.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        enc = model.encode(data['inputs'], data['data_samples'])
        _, reference = model.decode_with_reference(enc, 'main', data['data_samples'])
        n = enc['num_img_tokens']
        h, w = enc['feat_shape']
        best = model.token_grounding_head(enc['memory'][:, :n]).argmax(1)
        # the first query sits at the centre of the best token's cell
        assert torch.allclose(reference[:, 0, 0], ((best % w).float() + 0.5) / w)
        assert torch.allclose(reference[:, 0, 1], ((best // w).float() + 0.5) / h)
        assert torch.allclose(reference[..., 2:], torch.full_like(reference[..., 2:], 0.25))
        results = model(**data, mode='predict')
    assert results[0].pred_instances.bboxes.shape == (4, 4)


def test_token_queries_need_a_token_grounding_head():
    cfg = tiny_mdetr_config()
    cfg['token_queries'] = dict(box_size=0.25)
    with pytest.raises(ValueError, match='token_grounding_head'):
        MODELS.build(cfg)
