import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmvlg.registry import MODELS
from mmvlg.utils import register_all_modules

register_all_modules()


def _sample(box, img_shape=(100, 200), **meta):
    ds = DetDataSample(metainfo=dict(img_shape=img_shape, **meta))
    ds.gt_instances = InstanceData(bboxes=torch.tensor([box], dtype=torch.float32), labels=torch.zeros(1).long())
    return ds


def _head(**kwargs):
    """A one-layer head that predicts the centred box (0.5, 0.5, 0.5, 0.5) whatever the input."""
    head = MODELS.build(dict(type='BoxRegressionHead', in_channels=4, num_layers=1, **kwargs))
    with torch.no_grad():
        head.bbox_embed.layers[0].weight.zero_(), head.bbox_embed.layers[0].bias.zero_()
    return head


def test_losses_on_a_hand_made_case():
    head = _head()
    feats = torch.randn(2, 4)
    # image 100 x 200: the prediction is (50, 25, 150, 75) px; sample 0 hits it, sample 1 is (0, 0, 100, 50) px
    samples = [_sample([50., 25., 150., 75.]), _sample([0., 0., 100., 50.])]
    losses = head.loss(feats, samples)
    # L1 on (cx, cy, w, h): |0.5 - 0.25| * 2 for sample 1, averaged over the 2 samples, weight 5
    torch.testing.assert_close(losses['loss_bbox'], torch.tensor(5 * 0.5 / 2))
    # GIoU of (.25, .25, .75, .75) and (0, 0, .5, .5): IoU 1/7, hull .5625, union .4375; weight 2
    giou = 1 / 7 - (0.5625 - 0.4375) / 0.5625
    torch.testing.assert_close(losses['loss_iou'], torch.tensor(2 * (1 - giou) / 2), rtol=1e-4, atol=1e-5)
    sum(losses.values()).backward()
    assert head.bbox_embed.layers[0].bias.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='one box'):
        ds = _sample([0., 0., 1., 1.])
        ds.gt_instances = InstanceData(bboxes=torch.zeros(2, 4), labels=torch.zeros(2).long())
        head.loss(feats[:1], [ds])


def test_predict_rescales_with_the_shared_helper():
    head = _head()
    ds = _sample([0., 0., 1., 1.], scale_factor=(2.0, 0.5), ori_shape=(120, 100))
    res, = head.predict(torch.randn(1, 4), [ds])
    # (50, 25, 150, 75) px of the input / (2, 0.5) = (25, 50, 75, 150), clipped to the 120 x 100 original
    torch.testing.assert_close(res.bboxes, torch.tensor([[25., 50., 75., 120.]]))
    assert res.scores.tolist() == [1.0] and res.labels.tolist() == [0]
    raw, = head.predict(torch.randn(1, 4), [ds], rescale=False)
    torch.testing.assert_close(raw.bboxes, torch.tensor([[50., 25., 150., 75.]]))


def test_default_mlp_and_custom_losses():
    head = MODELS.build(dict(type='BoxRegressionHead', in_channels=16, hidden_channels=8,
                             loss_bbox=dict(type='mmdet.L1Loss', loss_weight=1.0),
                             loss_iou=dict(type='mmdet.GIoULoss', loss_weight=1.0)))
    assert [tuple(layer.weight.shape) for layer in head.bbox_embed.layers] == [(8, 16), (8, 8), (4, 8)]
    out = head(torch.randn(3, 16))
    assert out.shape == (3, 4) and ((out > 0) & (out < 1)).all()


def test_configured_mlp_block():
    """X-VLM's box head: the shared Linear-LayerNorm-GELU-Linear block, built from the registry."""
    if MODELS.get('MLPBlock') is None:
        pytest.skip('no MLPBlock registered')
    head = MODELS.build(dict(type='BoxRegressionHead', in_channels=16, mlp=dict(type='MLPBlock', hidden_dims=32)))
    assert [k for k in head.state_dict() if k.startswith('bbox_embed.')] == [
        'bbox_embed.0.weight', 'bbox_embed.0.bias', 'bbox_embed.1.weight', 'bbox_embed.1.bias',
        'bbox_embed.3.weight', 'bbox_embed.3.bias']
    samples = [_sample([50., 25., 150., 75.]), _sample([0., 0., 100., 50.])]
    losses = head.loss(torch.randn(2, 16), samples)
    assert set(losses) == {'loss_bbox', 'loss_iou'} and all(torch.isfinite(v) for v in losses.values())


def test_loss_by_boxes_weights_leave_boxes_out():
    """X-VLM's region boxes as a tensor, with per-box weights: a weight-0 box (a whole-image caption the
    authors' code leaves out) changes nothing; all weights 0 gives zero losses that keep the graph."""
    head = _head(loss_bbox=dict(type='mmdet.L1Loss', loss_weight=1.0),
                 loss_iou=dict(type='mmdet.GIoULoss', loss_weight=1.0))
    feats = torch.randn(3, 4, requires_grad=True)
    # the prediction is (0.25, 0.25, 0.75, 0.75); box 0 hits it, box 1 is (0, 0, 0.5, 0.5), box 2 the whole image
    targets = torch.tensor([[0.25, 0.25, 0.75, 0.75], [0., 0., 0.5, 0.5], [0., 0., 1., 1.]])
    out = head.loss_by_boxes(feats, targets, torch.tensor([1., 1., 0.]))
    # box 1: L1 on (cx, cy, w, h) = |0.5-0.25| * 2 = 0.5 summed; GIoU as in the hand-made case; mean over 2 boxes
    assert torch.allclose(out['loss_bbox'], torch.tensor(0.5 / 2))
    giou = 1 / 7 - (0.5625 - 0.4375) / 0.5625
    assert torch.allclose(out['loss_iou'], torch.tensor((1 - giou) / 2), atol=1e-5)
    assert torch.allclose(out['loss_bbox'], head.loss_by_boxes(feats[:2], targets[:2])['loss_bbox'])
    every = head.loss_by_boxes(feats, targets)  # the whole image counts too: (0.5 + 1.0) / 3
    assert torch.allclose(every['loss_bbox'], torch.tensor(1.5 / 3))
    none = head.loss_by_boxes(feats, targets, torch.zeros(3))
    assert none['loss_bbox'] == 0 and none['loss_iou'] == 0
    (none['loss_bbox'] + none['loss_iou']).backward()
    assert head.bbox_embed.layers[0].weight.grad is not None
