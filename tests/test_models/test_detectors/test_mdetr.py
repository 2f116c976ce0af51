import copy

import pytest
import torch
from mmengine.structures import InstanceData

from mmvlg.registry import MODELS
from mmvlg.testing import demo_grounding_batch, get_config, tiny_mdetr_config
from mmvlg.utils import register_all_modules

register_all_modules()


def _build(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _loss(model, batch):
    data = model.data_preprocessor(batch, True)
    return model(**data, mode='loss')


@pytest.mark.parametrize('mode', ['sentence', 'token'])
def test_loss_backward_predict(mode):
    torch.manual_seed(0)
    model = _build(tiny_mdetr_config(soft_token_mode=mode))
    batch = demo_grounding_batch(2, image_shapes=[(64, 80), (48, 96)])
    losses = _loss(model, batch)
    # last layer plain, the other decoder layer as d0.
    assert set(losses) == {'loss_ce', 'loss_bbox', 'loss_iou', 'd0.loss_ce', 'd0.loss_bbox', 'd0.loss_iou'}
    sum(losses.values()).backward()
    grads = [p.grad for n, p in model.named_parameters() if p.requires_grad]
    assert all(g is not None for g in grads)

    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        results = model(**data, mode='predict')
        logits, boxes = model(**data, mode='tensor')
    assert logits.shape == (2, 2, 4, model.bbox_head.num_soft_tokens) and boxes.shape == (2, 2, 4, 4)
    for res, (h, w) in zip(results, [(64, 80), (48, 96)]):
        pred = res.pred_instances
        assert len(pred) == 4  # every query, ranked
        assert torch.all(pred.scores[:-1] >= pred.scores[1:])
        assert pred.bboxes[:, 0::2].max() <= w and pred.bboxes[:, 1::2].max() <= h


def test_empty_gt_gives_zero_box_loss_and_positive_class_loss():
    model = _build(tiny_mdetr_config())
    batch = demo_grounding_batch(2)
    for ds in batch['data_samples']:
        ds.gt_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
        ds.set_metainfo(dict(tokens_positive=[]))
    losses = _loss(model, batch)
    assert losses['loss_bbox'].item() == 0 and losses['loss_iou'].item() == 0
    assert losses['loss_ce'].item() > 0


def test_matching_assigns_the_closest_query():
    """With a query predicting exactly the GT box and 'positive', Hungarian matching picks it."""
    model = _build(tiny_mdetr_config())
    head = model.bbox_head
    batch = demo_grounding_batch(1, image_shapes=[(100, 100)])
    ds = batch['data_samples'][0]
    ds.gt_instances.bboxes = torch.tensor([[10., 20., 50., 80.]])
    logits = torch.zeros(4, 2)
    boxes = torch.full((4, 4), 0.5)
    boxes[2] = torch.tensor([0.3, 0.5, 0.4, 0.6])  # the GT in normalized cx, cy, w, h
    logits[2] = torch.tensor([5., -5.])
    pos_maps = head.positive_maps([ds], None, 'cpu')
    (q, g), = head._match(logits[None], boxes[None], [ds], pos_maps)
    assert q.tolist() == [2] and g.tolist() == [0]


def test_contrastive_align_loss():
    cfg = tiny_mdetr_config(soft_token_mode='token')
    cfg['bbox_head']['contrastive_align'] = dict(embed_dims=8, temperature=0.07, loss_weight=1.0, text_dims=32)
    model = _build(cfg)
    losses = _loss(model, demo_grounding_batch(2))
    assert losses['loss_contrastive_align'].item() > 0
    assert 'd0.loss_contrastive_align' in losses


def test_multitask_aux_decoder_dropped_at_inference():
    """Multi-task SiRi: the auxiliary decoder (constant queries) adds losses in training only; with the
    same shared weights, inference equals the single-decoder model's."""
    torch.manual_seed(0)
    single = _build(tiny_mdetr_config())
    multi = _build(tiny_mdetr_config(aux_decoder=True))
    batch = demo_grounding_batch(2)
    losses = _loss(multi, batch)
    assert 'aux.loss_ce' in losses and 'aux.d0.loss_bbox' in losses
    missing, unexpected = multi.load_state_dict(single.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(('aux_decoder.', 'aux_head.')) for k in missing)
    assert 'aux_query_embedding' not in multi.state_dict()  # constant queries are not saved
    single.eval(), multi.eval()
    with torch.no_grad():
        a = single(**single.data_preprocessor(batch, False), mode='predict')
        b = multi(**multi.data_preprocessor(batch, False), mode='predict')
    for x, y in zip(a, b):
        torch.testing.assert_close(x.pred_instances.bboxes, y.pred_instances.bboxes)
    cfg = tiny_mdetr_config(aux_decoder=True)
    cfg['predict_with'] = 'aux'
    aux_pred = _build(cfg)
    aux_pred.eval()
    with torch.no_grad():
        out = aux_pred(**aux_pred.data_preprocessor(batch, False), mode='predict')
    assert len(out[0].pred_instances) == 4


def test_neck_without_fusion_and_attention_map():
    model = _build(tiny_mdetr_config(with_fusion=False))
    assert not hasattr(model.neck, 'add_feature')
    batch = demo_grounding_batch(2, image_shapes=[(64, 64), (64, 32)])
    model.eval()
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        att = model.cross_modal_attention(data['inputs'], data['data_samples'])
    assert att.shape == (2, 2, 2)  # 64 / 32 stride
    assert torch.all(att[1, :, 1:] == 0)  # padded half of the second image gets no attention


def test_synthref_config_builds_and_trains_one_step():
    cfg = get_config('mdetr/mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py')
    model = _build(cfg.model)
    losses = _loss(model, demo_grounding_batch(2, image_shapes=[(128, 128)] * 2))
    # 3 decoder layers x (ce, bbox, iou) + the dense token-grounding loss
    assert len(losses) == 10 and all(torch.isfinite(v) for v in losses.values())
    assert 'loss_token_grounding' in losses and not hasattr(model, 'query_embedding')


@pytest.mark.parametrize('dataset', ['refcoco', 'refcoco+', 'refcocog'])
def test_reference_configs_forward(dataset):
    """The paper's configs (R101 + RoBERTa-base, 6+6 layers, 16 queries) build and run with random weights.
    RoBERTa-base cannot be downloaded here, so its architecture is built from the config with a small
    word vocabulary; the pretrained ResNet is not loaded (no init_weights)."""
    cfg = get_config(f'mdetr/mdetr-star_r101_roberta-base_4xb18-55e_{dataset}.py')
    assert cfg.model.num_queries == 16 and cfg.model.encoder.num_layers == 6 and cfg.model.decoder.num_layers == 6
    assert cfg.model.backbone.depth == 101 and cfg.model.language_model.name_or_path == 'roberta-base'
    assert cfg.train_dataloader.batch_size * 4 == 72 and cfg.train_cfg.max_epochs == 55
    assert cfg.optim_wrapper.optimizer.lr == 5e-5
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys['language_model'].lr_mult * 5e-5 == pytest.approx(1e-5)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.language_model = dict(type='HFTextEncoder', model_config=dict(model_type='roberta'),
                                    tokenizer=dict(type='word', vocab='synthref'))
    model = MODELS.build(model_cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
    assert 150 < trainable < 260, trainable
    losses = _loss(model, demo_grounding_batch(1, image_shapes=[(64, 64)]))
    assert all(torch.isfinite(v) for v in losses.values())


def test_constant_queries_with_grid_reference():
    """Constant grid queries with reference boxes: at initialization every query's box sits on its own grid
    cell, and there is no learnable query parameter."""
    cfg = tiny_mdetr_config(num_queries=4)
    cfg.update(queries='constant', grid_reference=True)
    model = _build(cfg)
    assert not hasattr(model, 'query_embedding') and 'query_constant' not in model.state_dict()
    losses = _loss(model, demo_grounding_batch(2))
    sum(losses.values()).backward()
    torch.nn.init.zeros_(model.bbox_head.bbox_embed.layers[-1].weight)
    torch.nn.init.zeros_(model.bbox_head.bbox_embed.layers[-1].bias)
    model.eval()
    batch = demo_grounding_batch(2)
    with torch.no_grad():
        _, boxes = model(**model.data_preprocessor(batch, False), mode='tensor')
    torch.testing.assert_close(boxes[-1, 0], model.grid_reference_boxes)
    torch.testing.assert_close(boxes[-1, 0, :, :2], torch.tensor([[1, 1], [2, 1], [1, 2], [2, 2]]) / 3)
    with pytest.raises(ValueError, match='queries'):
        MODELS.build(dict(cfg, queries='grid'))


def test_grid_reference_of_the_auxiliary_decoder():
    """Multi-task SiRi with ``grid_reference``: the auxiliary decoder's constant queries predict boxes relative
    to their grid cells, while the main decoder (learnable queries) keeps absolute boxes."""
    cfg = tiny_mdetr_config(num_queries=4, aux_decoder=True)
    cfg['grid_reference'] = True
    model = _build(cfg)
    assert model._reference('main') is None
    torch.testing.assert_close(model._reference('aux'), model.grid_reference_boxes)
    losses = _loss(model, demo_grounding_batch(2))
    assert 'aux.loss_bbox' in losses and all(torch.isfinite(v) for v in losses.values())
    for head in (model.bbox_head, model.aux_head):
        torch.nn.init.zeros_(head.bbox_embed.layers[-1].weight)
        torch.nn.init.zeros_(head.bbox_embed.layers[-1].bias)
    cfg['predict_with'] = 'aux'
    aux_pred = _build(cfg)
    aux_pred.load_state_dict(model.state_dict())
    model.eval(), aux_pred.eval()
    batch = demo_grounding_batch(2)
    with torch.no_grad():
        _, main_boxes = model(**model.data_preprocessor(batch, False), mode='tensor')
        _, aux_boxes = aux_pred(**aux_pred.data_preprocessor(batch, False), mode='tensor')
    torch.testing.assert_close(aux_boxes[-1, 0], model.grid_reference_boxes)
    # Absolute boxes from a zero regression layer: every query predicts the same centred box.
    torch.testing.assert_close(main_boxes[-1, 0], torch.full((4, 4), 0.5))


def test_batched_matching_equals_per_image_hungarian_assigner():
    """The batched matcher gives mmdet's HungarianAssigner result for every image (0, 1 and 3 GTs)."""
    from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
    from mmengine.structures import InstanceData
    model = _build(tiny_mdetr_config())
    head = model.bbox_head
    batch = demo_grounding_batch(3, image_shapes=[(100, 120), (80, 60), (64, 64)])
    samples = batch['data_samples']
    torch.manual_seed(0)
    samples[0].gt_instances = InstanceData(
        bboxes=torch.tensor([[10., 20., 50., 80.], [0., 0., 30., 30.], [60., 10., 110., 90.]]),
        labels=torch.zeros(3, dtype=torch.long))
    samples[1].gt_instances = samples[1].gt_instances[:0]
    nq = 6
    logits = torch.randn(3, nq, 2)
    boxes = torch.rand(3, nq, 4) * 0.5 + 0.2
    pos_maps = head.positive_maps(samples, None, 'cpu')
    batched = head._match(logits, boxes, samples, pos_maps)
    for b, ds in enumerate(samples):
        q, g = batched[b]
        if len(ds.gt_instances) == 0:
            assert len(q) == 0 and len(g) == 0
            continue
        h, w = ds.img_shape
        factor = boxes.new_tensor([w, h, w, h])
        pred = InstanceData(scores=logits[b], bboxes=bbox_cxcywh_to_xyxy(boxes[b]) * factor)
        gt = InstanceData(bboxes=ds.gt_instances.bboxes, labels=ds.gt_instances.labels, positive_maps=pos_maps[b])
        res = head.assigner.assign(pred, gt, img_meta=ds.metainfo)
        ref_q = torch.nonzero(res.gt_inds > 0).squeeze(-1)
        assert sorted(zip(q.tolist(), g.tolist())) == sorted(zip(ref_q.tolist(), (res.gt_inds[ref_q] - 1).tolist()))


def _predict_head():
    """A 2-query head whose boxes are its reference boxes (zero regression) and whose query score is
    ``sigmoid(hidden[..., 0])`` (the positive logit reads feature 0, "no object" is 0)."""
    head = MODELS.build(dict(type='MDETRHead', embed_dims=8, num_soft_tokens=2, soft_token_mode='sentence'))
    with torch.no_grad():
        for layer in head.bbox_embed.layers:
            layer.weight.zero_(), layer.bias.zero_()
        head.class_embed.weight.zero_(), head.class_embed.bias.zero_()
        head.class_embed.weight[0, 0] = 1.0
    hidden = torch.zeros(1, 1, 2, 8)
    hidden[0, 0, :, 0] = torch.tensor([-1.0, 2.0])
    reference = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.9, 0.1, 0.4, 0.4]])
    return head, hidden, reference


def test_head_predict_rescales_and_clips_to_the_original_image():
    """Boxes of the network input (img_shape 100 x 200) are divided by scale_factor (w 2, h 0.5) and clipped to
    ori_shape (150 x 100): hand-computed values."""
    from mmdet.structures import DetDataSample
    head, hidden, reference = _predict_head()
    ds = DetDataSample(metainfo=dict(img_shape=(100, 200), scale_factor=(2.0, 0.5), ori_shape=(150, 100)))
    with torch.no_grad():
        res, = head.predict(hidden, [ds], rescale=True, reference=reference)
        raw, = head.predict(hidden, [ds], rescale=False, reference=reference)
    # query 1 scores sigmoid(2) > sigmoid(-1): ranked first
    assert res.query_index.tolist() == [1, 0]
    torch.testing.assert_close(res.scores, torch.sigmoid(torch.tensor([2.0, -1.0])))
    # q1: (cx, cy, w, h) = (0.9, 0.1, 0.4, 0.4) -> (140, -10, 220, 30) px -> / (2, .5) = (70, -20, 110, 60) -> clipped
    # q0: (0.5, 0.5, 0.2, 0.4) -> (80, 30, 120, 70) px -> (40, 60, 60, 140), inside the original image
    torch.testing.assert_close(res.bboxes, torch.tensor([[70., 0., 100., 60.], [40., 60., 60., 140.]]),
                               atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(raw.bboxes, torch.tensor([[140., -10., 220., 30.], [80., 30., 120., 70.]]),
                               atol=1e-3, rtol=1e-5)


def test_contrastive_align_loss_module_from_config():
    """The head's alignment loss is a config-built ContrastiveAlignLoss: giving its temperature and weight in
    ``loss_contrastive_align`` or (as the released configs do) in ``contrastive_align`` is the same model and
    the same loss; the projections keep their checkpoint names; conflicting values are refused."""
    from mmvlg.models.losses import ContrastiveAlignLoss
    batch = demo_grounding_batch(2, num_boxes=2)
    values = []
    for where in ('contrastive_align', 'loss_contrastive_align'):
        cfg = tiny_mdetr_config(soft_token_mode='token')
        cfg['bbox_head']['contrastive_align'] = dict(embed_dims=8, text_dims=32)
        params = dict(temperature=0.05, loss_weight=0.5)
        if where == 'contrastive_align':
            cfg['bbox_head']['contrastive_align'].update(params)
        else:
            cfg['bbox_head']['loss_contrastive_align'] = dict(type='ContrastiveAlignLoss', **params)
        torch.manual_seed(0)
        model = _build(cfg)
        loss = model.bbox_head.loss_contrastive_align
        assert isinstance(loss, ContrastiveAlignLoss) and (loss.temperature, loss.loss_weight) == (0.05, 0.5)
        assert {'bbox_head.contrastive_align_projection_image.weight',
                'bbox_head.contrastive_align_projection_text.weight'} <= set(model.state_dict())
        torch.manual_seed(1)
        values.append(_loss(model, batch)['loss_contrastive_align'])
    torch.testing.assert_close(values[0], values[1])
    head = dict(type='MDETRHead', num_soft_tokens=32, soft_token_mode='token')
    with pytest.raises(ValueError, match='temperature'):
        MODELS.build(dict(head, contrastive_align=dict(temperature=0.1),
                          loss_contrastive_align=dict(type='ContrastiveAlignLoss', temperature=0.2)))
    with pytest.raises(ValueError, match='needs contrastive_align'):
        MODELS.build(dict(head, loss_contrastive_align=dict(type='ContrastiveAlignLoss')))


def test_query_strategies_keep_their_checkpoint_names():
    """Each query strategy is a registered generator under the attribute its weights are saved with; a
    generator config can be given instead of a name."""
    from mmvlg.models.layers import ConstantGridQueries, LearnedQueries, SiRiGridQueries
    model = MODELS.build(tiny_mdetr_config())
    assert isinstance(model.get_query_generator('main'), LearnedQueries)
    assert model.query_embedding.weight.shape == (4, 32)
    cfg = tiny_mdetr_config(aux_decoder=True)
    cfg['aux_decoder']['queries'] = 'siri'
    model = MODELS.build(cfg)
    assert isinstance(model.get_query_generator('aux'), SiRiGridQueries)
    assert {'aux_query_norm.weight', 'aux_query_norm.bias', 'query_embedding.weight'} <= set(model.state_dict())
    cfg['aux_decoder']['queries'] = 'learnable'
    assert 'aux_query_embedding_learned.weight' in MODELS.build(cfg).state_dict()
    cfg = tiny_mdetr_config(aux_decoder=True)
    cfg.update(queries=dict(type='ConstantGridQueries', with_reference=True))
    model = _build(cfg)
    assert isinstance(model.get_query_generator('main'), ConstantGridQueries)
    assert model._query_attrs == {'main': 'query_generator', 'aux': 'aux_query_embedding'}
    torch.testing.assert_close(model._reference('main'), model.grid_reference_boxes)
    assert model._reference('aux') is None  # grid_reference=False for the named strategy
    losses = _loss(model, demo_grounding_batch(2))
    assert all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match='aux_decoder.queries'):
        MODELS.build(dict(tiny_mdetr_config(aux_decoder=True), aux_decoder=dict(cfg['aux_decoder'], queries='grid')))
