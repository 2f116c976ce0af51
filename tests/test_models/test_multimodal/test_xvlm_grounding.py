"""X-VLM referring-expression comprehension: the supervised box model (boxes in original-image pixels, the
box-only warm-up on region-text samples, the fine-tuning losses) and the weakly supervised one (ITC/ITM losses
with the expressions of one image as positives, Grad-CAM of the ITM score on a cross layer, proposals ranked by
the in-box sum / sqrt(area), bad inputs)."""
import pytest
import torch
from mmdet.models.detectors import BaseDetector
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmvlg.datasets.synthetic import caption_vocabulary
from mmvlg.models.multimodal.base import VisionLanguageMixin
from mmvlg.models.utils import score_proposals
from mmvlg.registry import MODELS
from mmvlg.utils import register_all_modules

register_all_modules()

WIDTH, VIS = 32, 48


def _common(**kwargs) -> dict:
    cfg = dict(
        vision_encoder=dict(type='XVLMViT', img_size=32, patch_size=8, embed_dims=VIS, depth=2, num_heads=2,
                            local_attn_depth=1),
        language_model=dict(
            type='HFTextEncoder', max_length=24, tokenizer=dict(type='word', vocab=caption_vocabulary()),
            model_config=dict(model_type='bert', hidden_size=WIDTH, num_hidden_layers=4, num_attention_heads=2,
                              intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
            cross_attention=dict(start=2)))
    cfg.update(kwargs)
    return cfg


def _supervised(**kwargs):
    torch.manual_seed(0)
    model = MODELS.build(_common(
        type='XVLMGrounding',
        bbox_head=dict(type='BoxRegressionHead', mlp=dict(type='MLPBlock', hidden_dims=2 * WIDTH),
                       loss_bbox=dict(type='mmdet.L1Loss', loss_weight=1.0),
                       loss_iou=dict(type='mmdet.GIoULoss', loss_weight=1.0)), **kwargs))
    model.init_weights()
    return model


def _weak(**kwargs):
    torch.manual_seed(0)
    kwargs.setdefault('gradcam_layer', 3)
    model = MODELS.build(_common(
        type='XVLMWeakGrounding',
        itc_head=dict(type='ITCHead', embed_dims=16, temperature=0.07, temperature_range=(0.001, 0.5),
                      pooler=dict(type='DualStreamPooler', image_pooling='cls', tanh_pooler=False, pool_first=True)),
        itm_head=dict(type='ITMHead', hidden_dims=2 * WIDTH), **kwargs))
    model.init_weights()
    return model


def _rec_sample(text, box, img_shape=(32, 32), ori_shape=(64, 128), original_id=0, img_id=0, proposals=None):
    """A REC sample after a test-time resize of an ori_shape image to img_shape (box in img_shape pixels)."""
    sy, sx = img_shape[0] / ori_shape[0], img_shape[1] / ori_shape[1]
    meta = dict(text=text, img_id=img_id, original_id=original_id, img_shape=img_shape, ori_shape=ori_shape,
                scale_factor=(sx, sy))
    ds = DetDataSample(metainfo=meta)
    if proposals is not None:
        ds.proposals = InstanceData(bboxes=torch.as_tensor(proposals), scores=torch.ones(len(proposals)))
    ds.gt_instances = InstanceData(bboxes=torch.tensor([box], dtype=torch.float32),
                                   labels=torch.zeros(1, dtype=torch.long))
    return ds


def test_models_are_detectors_built_on_xvlm():
    model = _supervised()
    assert isinstance(model, BaseDetector) and isinstance(model, VisionLanguageMixin)
    # the pre-training model's parameter names: an XVLM checkpoint (or the warm-up's) loads unchanged
    assert any(k.startswith('language_model.cross_attns.') for k in model.state_dict())
    assert any(k.startswith('bbox_head.bbox_embed.') for k in model.state_dict())
    with pytest.raises(ValueError, match='bbox_head'):
        MODELS.build(_common(type='XVLMGrounding', bbox_head=None))
    with pytest.raises(ValueError, match='gradcam_layer=1'):
        _weak(gradcam_layer=1)


def test_predict_boxes_in_original_pixels():
    model = _supervised().eval()
    inputs = torch.randn(2, 3, 32, 32)
    samples = [_rec_sample('the red circle', [2., 3., 14., 15.]),
               _rec_sample('the blue square', [16., 8., 30., 24.], ori_shape=(32, 32))]
    with torch.no_grad():
        norm = model(inputs, samples, mode='tensor')  # (2, 4) normalized cx, cy, w, h
        out = model(inputs, [DetDataSample(metainfo=s.metainfo) for s in samples], mode='predict')
    assert norm.shape == (2, 4) and bool(((norm > 0) & (norm < 1)).all())
    for b, (ds, (oh, ow)) in enumerate(zip(out, [(64, 128), (32, 32)])):
        cx, cy, w, h = norm[b].tolist()
        expected = torch.tensor([[(cx - w / 2) * ow, (cy - h / 2) * oh, (cx + w / 2) * ow, (cy + h / 2) * oh]])
        expected[:, 0::2] = expected[:, 0::2].clamp(0, ow)
        expected[:, 1::2] = expected[:, 1::2].clamp(0, oh)
        assert ds.pred_instances.bboxes.shape == (1, 4)
        torch.testing.assert_close(ds.pred_instances.bboxes, expected, atol=1e-4, rtol=0)
        assert ds.pred_instances.scores.tolist() == [1.0] and ds.pred_instances.labels.tolist() == [0]


def test_finetune_losses_and_gradients():
    model = _supervised().train()
    samples = [_rec_sample('the red circle', [2., 3., 14., 15.]),
               _rec_sample('the blue square', [16., 8., 30., 24.])]
    losses = model(torch.randn(2, 3, 32, 32), samples, mode='loss')
    assert set(losses) == {'loss_bbox', 'loss_iou'}
    sum(losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.bbox_head.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.vision_encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.language_model.cross_attns.parameters())
    # a perfect prediction has zero losses: check the targets are normalized by img_shape
    target = model.bbox_head.targets(samples, 'cpu')
    torch.testing.assert_close(target[0], torch.tensor([2., 3., 14., 15.]) / 32)
    with pytest.raises(ValueError, match="sample 7"):
        model(torch.randn(1, 3, 32, 32), [_rec_sample('', [2., 3., 14., 15.], img_id=7)], mode='loss')


def _region_sample(img_id, regions, size=32):
    ds = DetDataSample(metainfo=dict(text='', img_id=img_id, img_shape=(size, size), ori_shape=(size, size),
                                     region_texts=[r[0] for r in regions],
                                     region_is_image=[bool(r[2]) for r in regions]))
    ds.gt_instances = InstanceData(bboxes=torch.tensor([r[1] for r in regions], dtype=torch.float32),
                                   labels=torch.zeros(len(regions), dtype=torch.long))
    return ds


def test_warmup_stage_has_box_losses_only():
    model = _supervised().train()
    whole = [0., 0., 32., 32.]
    batch = [_region_sample(0, [('a red circle and a blue square', whole, True), ('red circle', [2., 3., 14., 15.],
                                                                                  False)]),
             _region_sample(1, [('big yellow diamond', [8., 8., 24., 30.], False)])]
    inputs = torch.randn(2, 3, 32, 32)
    losses = model(inputs, batch, mode='loss')
    assert set(losses) == {'loss_bbox', 'loss_iou'}
    # the same as the box head on the two non-image regions (the whole-image caption left out, as released)
    image = model.extract_feat(inputs)
    tok = model.tokenize(['red circle', 'big yellow diamond'])
    fused = model.cross_encode(model.encode_text(tok), tok['attention_mask'], image[torch.tensor([0, 1])])
    ref = model.bbox_head.loss_by_boxes(fused[:, 0], torch.tensor([[2., 3., 14., 15.], [8., 8., 24., 30.]]) / 32)
    torch.testing.assert_close(losses['loss_bbox'], ref['loss_bbox'])
    torch.testing.assert_close(losses['loss_iou'], ref['loss_iou'])
    model.bbox_on_whole_image = True
    assert not torch.allclose(model(inputs, batch, mode='loss')['loss_bbox'], losses['loss_bbox'])
    sum(losses.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.bbox_head.parameters())
    with pytest.raises(ValueError, match='mixes'):
        model(inputs, [batch[0], _rec_sample('the red circle', [2., 3., 14., 15.])], mode='loss')


def test_weak_losses_use_image_ids_as_positives():
    model = _weak().train()
    samples = [_rec_sample('the red circle', [2., 3., 14., 15.], original_id=5, img_id=0),
               _rec_sample('the blue square', [16., 8., 30., 24.], original_id=5, img_id=1),
               _rec_sample('the green triangle', [1., 1., 9., 9.], original_id=6, img_id=2)]
    seen = {}
    orig = model.itm_pairs

    def spy(sim, ids, *args, **kwargs):
        seen['ids'] = ids.clone()
        return orig(sim, ids, *args, **kwargs)

    model.itm_pairs = spy
    losses = model(torch.randn(3, 3, 32, 32), samples, mode='loss')
    assert {'loss_itc', 'loss_itm', 'acc_itm', 'temperature'} <= set(losses)
    assert seen['ids'][0] == seen['ids'][1] != seen['ids'][2]
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.itm_head.parameters())


def test_weak_gradcam_matches_a_manual_computation():
    model = _weak().eval()
    inputs = torch.randn(2, 3, 32, 48)  # 4 x 6 patches
    samples = [_rec_sample('the red circle', [2., 3., 14., 15.], img_shape=(32, 48), ori_shape=(32, 48)),
               _rec_sample('the blue square left of the red circle', [16., 8., 30., 24.], img_shape=(32, 40),
                           ori_shape=(64, 80))]
    params_before = [p.grad for p in model.parameters()]
    with torch.no_grad():
        cams = model.gradcam(inputs, samples)
    assert cams.shape == (2, 4, 6) and bool((cams >= 0).all()) and cams.sum() > 0
    assert all(g is None for g in params_before) and all(p.grad is None for p in model.parameters())
    # by hand: the layer-3 cross-attention probabilities, recomputed from its query/key projections
    image = model.extract_feat(inputs)
    tok = model.tokenize([s.text for s in samples])
    lm = model.language_model
    text = model.encode_text(tok)
    captured = {}
    block = lm.cross_attns['3'].self
    handle = block.register_forward_pre_hook(lambda m, args, kwargs: captured.update(h=args[0] if args else
                                                                                      kwargs['hidden_states']),
                                             with_kwargs=True)
    with torch.no_grad():
        model.cross_encode(text, tok['attention_mask'], image)
    handle.remove()
    heads, dh = 2, WIDTH // 2
    q = block.query(captured['h']).view(2, -1, heads, dh).transpose(1, 2)
    k = block.key(image).view(2, -1, heads, dh).transpose(1, 2)
    attn = torch.softmax(q @ k.transpose(-1, -2) / dh ** 0.5, dim=-1).detach().requires_grad_(True)

    def run_from_layer3(a):  # layer 3 with the probabilities given, then the ITM score
        v = block.value(image).view(2, -1, heads, dh).transpose(1, 2)
        ctx = (a @ v).transpose(1, 2).reshape(2, -1, WIDTH)
        att = lm.cross_attns['3']
        h = att.output.LayerNorm(att.output.dense(ctx) + captured['h'])
        return model.itm_head.score(lm.layers[3].feed_forward_chunk(h)[:, 0])

    grad, = torch.autograd.grad(run_from_layer3(attn).sum(), attn)
    cam = (attn * grad.clamp(min=0))[..., 1:].mean(1)
    mask = tok['attention_mask'].float()[..., None]
    cam = ((cam * mask).sum(1) / mask.sum(1)).reshape(2, 4, 6)
    torch.testing.assert_close(cams, cam.detach(), atol=1e-5, rtol=1e-4)


def test_weak_predict_ranks_proposals_by_gradcam_score():
    model = _weak().eval()
    inputs = torch.randn(1, 3, 32, 32)
    proposals = torch.tensor([[0., 0., 30., 60.], [64., 0., 128., 64.], [10., 10., 20., 20.]])
    sample = _rec_sample('the red circle', [2., 3., 14., 15.], ori_shape=(64, 128), proposals=proposals)
    with torch.no_grad():
        out = model(inputs, [sample], mode='predict')[0]
        heat = model.heatmaps(inputs, [sample])[0]
    assert heat.shape == (64, 128)
    scores = score_proposals(heat, proposals)
    order = scores.argsort(descending=True)
    torch.testing.assert_close(out.pred_instances.bboxes, proposals[order])
    torch.testing.assert_close(out.pred_instances.scores, scores[order])
    assert out.pred_instances.labels.tolist() == [0, 0, 0]
    with pytest.raises(KeyError, match="sample 3 .*proposals"):
        model(inputs, [_rec_sample('the red circle', [2., 3., 14., 15.], img_id=3)], mode='predict')


def _tiny_run_config(name, tmp_path):
    """The tiny SynthRef config on a 24-scene SynthRef under tmp_path, for a few iterations."""
    import os.path as osp

    from mmengine.config import Config

    from mmvlg.testing._utils import REPO_ROOT
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'xvlm', name))
    root = str(tmp_path / 'synthref') + '/'
    gen = dict(cfg.synthref_generate, num_scenes=dict(train=12, val=4, testA=4, testB=4))
    loaders = [cfg.train_dataloader, cfg.val_dataloader]
    for loader in loaders:
        loader.dataset.data_root = root
        loader.dataset.generate = gen
        loader.num_workers = 0
        loader.persistent_workers = False
        for step in loader.dataset.pipeline:
            if step['type'] == 'LoadProposals':
                step['proposal_file'] = step['proposal_file'].replace(cfg.data_root, root)
    cfg.train_dataloader.batch_size = 8
    cfg.val_dataloader.batch_size = 8
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=3, val_interval=3)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=3)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(type='LogProcessor', by_epoch=False)
    cfg.work_dir = str(tmp_path / 'work')
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize('name', ['xvlm-rec_vit-tiny_bert-tiny_1xb32-3e_synthref.py',
                                  'xvlm-rec-weak_vit-tiny_bert-tiny_1xb32-3e_synthref.py'])
def test_tiny_config_trains_a_few_iterations(name, tmp_path):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(_tiny_run_config(name, tmp_path))
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    after = runner.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    metrics = runner.val_loop.run()
    assert 0.0 <= metrics['refexp/Prec@1'] <= 100.0
