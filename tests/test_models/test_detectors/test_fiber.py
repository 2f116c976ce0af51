"""FIBER's fine-grained grounding detector: head scores and losses, REC/phrase prediction, reference configs."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

from mmvlg.evaluation.metrics import FlickrRecallMetric, RefExpMetric
from mmvlg.registry import MODELS
from mmvlg.testing import demo_grounding_batch, get_config, tiny_fiber_config
from mmvlg.utils import register_all_modules

register_all_modules()

SHAPES = [(64, 80), (48, 96)]


def _build(cfg):
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _loss(model, batch):
    return model(**model.data_preprocessor(batch, True), mode='loss')


def _predict(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**model.data_preprocessor(batch, False), mode='predict')


@pytest.mark.parametrize('use_dcn', [False, True])
def test_loss_backward_and_rec_prediction(use_dcn):
    model = _build(tiny_fiber_config('rec', use_dcn=use_dcn))
    batch = demo_grounding_batch(2, image_shapes=SHAPES)
    losses = _loss(model, batch)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_centerness'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad
    assert model.backbone.i2t_attns[0].alpha.grad.abs() > 0  # the gates learn from the grounding loss

    results = _predict(model, batch)
    for res, (h, w) in zip(results, SHAPES):
        pred = res.pred_instances
        assert 0 < len(pred) <= 100 and set(pred.labels.tolist()) == {0}
        assert torch.all(pred.scores[:-1] >= pred.scores[1:])  # top-1 first, as RefExpMetric expects
        assert pred.bboxes[:, 0::2].max() <= w + 1 and pred.bboxes[:, 1::2].max() <= h + 1
    metric = RefExpMetric()
    metric.process({}, [r.to_dict() for r in results])
    assert set(metric.compute_metrics(metric.results)) >= {'Prec@1', 'Prec@5', 'Prec@10'}


def test_raw_outputs_and_grounding_scores():
    """Scores: <R_a, W e_t / 2> / exp(log_scale) + <e_t, bias_lang> + bias0, e_t L2-normalized."""
    model = _build(tiny_fiber_config())
    model.eval()
    batch = demo_grounding_batch(2, image_shapes=SHAPES)
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        cls_logits, bbox_preds, centerness = model(**data, mode='tensor')
        feats, lang = model.extract_feat(data['inputs'], data['data_samples'])
        head = model.bbox_head.head
        with torch.no_grad():
            head.log_scale.fill_(0.3)
            head.bias_lang.normal_()
        visual = head.dyhead_tower(dict(visual=feats, lang=lang))['visual'][1]
        logits = model.bbox_head(feats, lang)[0][1]
    num_tokens = lang['masks'].shape[1]
    assert len(cls_logits) == 5 and cls_logits[0].shape == (2, 96 * 1, num_tokens)  # 96 = 8x12 P3 positions
    assert bbox_preds[0].shape == (2, 4, 8, 12) and centerness[0].shape == (2, 1, 8, 12)
    e = F.normalize(lang['embedded'], dim=-1)
    region = visual.flatten(2).transpose(1, 2)
    ref = (region @ head.dot_product_projection_text(e / 2).transpose(1, 2)) / math.exp(0.3)
    ref = ref + (e @ head.bias_lang + head.bias0)[:, None]
    torch.testing.assert_close(logits, ref, rtol=1e-4, atol=1e-4)
    assert float(model.bbox_head.head.bias0.detach()) == pytest.approx(-math.log(99))


def test_positive_maps_and_padding_tokens_are_ignored():
    model = _build(tiny_fiber_config())
    batch = demo_grounding_batch(2, image_shapes=SHAPES, texts=['the small red circle left of the blue square',
                                                               'a square'])
    batch['data_samples'][1].set_metainfo(dict(tokens_positive=[[[2, 8]]]))
    data = model.data_preprocessor(batch, True)
    head = model.bbox_head
    feats, lang = model.extract_feat(data['inputs'], data['data_samples'])
    losses = head.loss(feats, lang, data['data_samples'])
    pmaps = [ds.gt_instances.positive_maps for ds in data['data_samples']]
    assert pmaps[0].shape == (1, lang['masks'].shape[1])
    assert pmaps[0].tolist()[0][:6] == [0, 1, 1, 1, 1, 0]  # [CLS] the small red circle | left (binary)
    assert pmaps[1].sum() == 1 and not lang['masks'][1, 4:].any()  # 'square'; padding after [CLS] a square [SEP]
    # any logit at a padded token leaves the loss unchanged
    outs = list(head(feats, lang))
    outs[0] = [c.clone() for c in outs[0]]
    for c in outs[0]:
        c[1, :, 4:] += 50.0
    from mmdet.models.utils import unpack_gt_instances
    gts, ignores, metas = unpack_gt_instances(data['data_samples'])
    again = head.loss_by_feat(*outs, gts, metas, ignores)
    torch.testing.assert_close(again['loss_cls'], losses['loss_cls'])


def test_empty_gt_gives_zero_box_loss_and_positive_class_loss():
    model = _build(tiny_fiber_config())
    batch = demo_grounding_batch(2, image_shapes=SHAPES)
    for ds in batch['data_samples']:
        ds.gt_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
        ds.set_metainfo(dict(tokens_positive=[]))
    losses = _loss(model, batch)
    assert losses['loss_bbox'].item() == 0 and losses['loss_centerness'].item() == 0
    assert 0 < losses['loss_cls'].item() < 100  # normalized by max(num_pos, 1), not by eps


def test_token_groups():
    model = _build(tiny_fiber_config())
    batch = demo_grounding_batch(1, texts=['the red circle and a blue square'])
    ds = batch['data_samples'][0]
    ds.set_metainfo(dict(tokens_positive=[[[19, 32]]]))  # 'a blue square'
    data = model.data_preprocessor(batch, False)
    _, lang = model.extract_feat(data['inputs'], data['data_samples'])
    assert model.token_groups(data['data_samples'], lang) == [{1: [5, 6, 7]}]
    model.rec_tokens = 'all'
    assert model.token_groups(data['data_samples'], lang) == [{1: [1, 2, 3, 4, 5, 6, 7]}]
    model.grounding_task = 'phrase'
    data['data_samples'][0].set_metainfo(dict(phrases=[dict(tokens_positive=[[0, 14]]),
                                                       dict(tokens_positive=[[19, 32]])]))
    assert model.token_groups(data['data_samples'], lang) == [{1: [1, 2, 3], 2: [5, 6, 7]}]


def test_phrase_grounding_prediction_and_metric():
    model = _build(tiny_fiber_config('phrase'))
    batch = demo_grounding_batch(2, image_shapes=SHAPES, texts=['the red circle and a blue square'] * 2)
    phrases = [dict(phrase_id=0, tokens_positive=[[0, 14]], gt_bboxes=[[0, 0, 20, 20]]),
               dict(phrase_id=1, tokens_positive=[[19, 32]], gt_bboxes=[[10, 10, 40, 40]])]
    batch['data_samples'][0].set_metainfo(dict(phrases=phrases))
    batch['data_samples'][1].set_metainfo(dict(phrases=[]))  # a caption with no phrase
    results = _predict(model, batch)
    pred = results[0].pred_instances
    assert len(pred.phrase_bboxes) == 2 and set(pred.labels.tolist()) <= {0, 1}
    for p in range(2):
        boxes = pred.phrase_bboxes[p]
        assert len(boxes) > 0 and torch.equal(boxes, pred.bboxes[pred.labels == p])
        scores = pred.scores[pred.labels == p]
        assert torch.all(scores[:-1] >= scores[1:])
    assert len(results[1].pred_instances) == 0 and results[1].pred_instances.phrase_bboxes == []
    metric = FlickrRecallMetric()
    metric.process({}, [r.to_dict() for r in results])
    assert 0 <= metric.compute_metrics(metric.results)['Recall@10'] <= 100  # percent


def test_fusion_off_is_the_dual_encoder_detector():
    cfg = tiny_fiber_config()
    on = _build(cfg)
    off = _build(dict(cfg, fusion=False))
    off.load_state_dict(on.state_dict())
    with torch.no_grad():  # with alpha != 0 only the fusion model sees the text in the image features
        for m in [*on.backbone.i2t_attns, *on.backbone.t2i_attns, *off.backbone.i2t_attns,
                  *off.backbone.t2i_attns]:
            m.alpha.fill_(1.0)
    on.eval(), off.eval()
    batch = demo_grounding_batch(1)
    data = on.data_preprocessor(batch, False)
    with torch.no_grad():
        a = on(**data, mode='tensor')[0][0]
        b = off(**data, mode='tensor')[0][0]
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match='grounding_task'):
        MODELS.build(dict(cfg, grounding_task='vqa'))


@pytest.mark.parametrize('name', ['8xb2-20e_refcoco', '8xb2-20e_refcoco+', '8xb2-20e_refcocog',
                                  '8xb2-12e_flickr30k'])
def test_reference_configs_build_and_run(name):
    """The paper's settings, and a forward pass with random weights of the same structure at a tiny width
    (Swin widths/depths, RoBERTa size and head width overridden; nothing downloaded)."""
    cfg = get_config(f'fiber/fiber_swin-b_roberta-base_{name}.py')
    m = cfg.model
    assert m.backbone.num_fusion_layers == 6 and m.backbone.language_model.name_or_path == 'roberta-base'
    assert m.backbone.visual.depths == (2, 2, 18, 2) and m.backbone.visual.embed_dims == 128
    assert m.backbone.visual.window_size == 12 and m.bbox_head.num_dyhead_blocks == 6
    assert m.grounding_task == ('phrase' if 'flickr' in name else 'rec')
    opt = cfg.optim_wrapper
    assert opt.optimizer.lr == 1e-4 and opt.optimizer.weight_decay == 0.01
    assert opt.paramwise_cfg.custom_keys['backbone.language_model'].lr_mult * 1e-4 == pytest.approx(1e-5)
    warmup, steps = cfg.param_scheduler
    assert warmup.end == 2000 and not warmup.by_epoch
    epochs = cfg.train_cfg.max_epochs
    assert [round(s / epochs, 2) for s in steps.milestones] in ([0.65, 0.9], [0.67, 0.92])
    assert cfg.test_dataloader.dataset.get('datasets', [cfg.test_dataloader.dataset])[0].pipeline[1].scale == \
        (1333, 800)

    model_cfg = copy.deepcopy(m)
    model_cfg.backbone.visual.update(embed_dims=16, depths=(1, 1, 4, 2), num_heads=(1, 1, 2, 2))
    model_cfg.backbone.language_model = dict(
        type='HFTextEncoder', max_length=31, tokenizer=dict(type='word', vocab='synthref'),
        model_config=dict(model_type='roberta', hidden_size=32, num_hidden_layers=6, num_attention_heads=2,
                          intermediate_size=64))
    model_cfg.neck.update(in_channels=[32, 64, 128], out_channels=32)
    model_cfg.bbox_head.update(in_channels=32, feat_channels=32, lang_dim=32, num_dyhead_blocks=1)
    model = MODELS.build(model_cfg)  # no init_weights: the Swin checkpoint URL is not fetched
    assert len(model.backbone.i2t_attns) == 6
    losses = _loss(model, demo_grounding_batch(1, image_shapes=[(64, 64)]))
    assert all(torch.isfinite(v) for v in losses.values())
