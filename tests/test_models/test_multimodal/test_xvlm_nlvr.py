"""X-VLM for NLVR2 (XVLMNLVR: each cross layer duplicated per image, key/value projections shared), its text-assignment
pre-training step (XVLMNLVRPretrain), ClassificationAccuracy and the tiny SynthRef NLVR2 config."""
import copy
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config

from mmvlg.datasets.synthetic import caption_vocabulary
from mmvlg.datasets.synthetic.nlvr2 import statement_vocabulary
from mmvlg.evaluation import ClassificationAccuracy
from mmvlg.models.utils.text_assignment import LEFT, NEITHER, RIGHT, text_assignment_pairs
from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

register_all_modules()
CONFIGS = osp.join(REPO_ROOT, 'configs', 'xvlm')
NLVR2 = osp.join(CONFIGS, 'xvlm-nlvr2_vit-tiny_bert-tiny_1xb16-2k_synthref-nlvr2.py')
PRETRAIN = osp.join(CONFIGS, 'xvlm-nlvr2-pretrain_vit-tiny_bert-tiny_1xb16-1k_synthref-captions.py')
SINGLE = osp.join(CONFIGS, 'xvlm_vit-tiny_bert-tiny_1xb16-3k_synthref-regions.py')
VOCAB = sorted(set(caption_vocabulary()) | set(statement_vocabulary()))


def _tiny(cfg_model, **kw):
    cfg = copy.deepcopy(cfg_model)
    cfg.vision_encoder.update(img_size=32, embed_dims=32, depth=2, local_attn_depth=1)
    cfg.language_model.model_config.update(hidden_size=32, intermediate_size=64)
    cfg.update(kw)
    if cfg.get('cls_head') is not None:
        cfg.cls_head.hidden_dims = 64
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _nlvr2_model():
    return _tiny(Config.fromfile(NLVR2).model)


def _pairs(statements, labels):
    samples = []
    for i, (text, label) in enumerate(zip(statements, labels)):
        for k in (0, 1):
            samples.append(DetDataSample(metainfo=dict(text=text, label=label, img_id=f'val-{i}-0', image_index=k,
                                                       img_shape=(32, 32), template='shape_both')))
    return samples


TEXTS = ['both images contain a circle', 'the left image has more squares than the right image',
         'there are exactly two triangles in the two images']


def test_config_vocabulary_and_layout():
    cfg = Config.fromfile(NLVR2)
    assert cfg.nlvr2_vocab == VOCAB
    assert cfg.train_dataloader.collate_fn.type == 'nlvr2_collate'
    model = _nlvr2_model()
    lm = model.language_model
    # 2 text layers + each of the 2 cross layers twice (the authors' numbering)
    assert lm.num_layers == 6 and lm.cross_attention_layers == [2, 3, 4, 5]
    assert lm.context_index == {2: 0, 3: 1, 4: 0, 5: 1} and lm.cross_attention_groups() == [[2, 3], [4, 5]]


def test_key_value_shared_query_output_and_layers_not():
    model = _nlvr2_model()
    lm = model.language_model
    for a, b in lm.cross_attention_groups():
        ca, cb = lm.cross_attns[str(a)], lm.cross_attns[str(b)]
        for name in ('key', 'value'):
            assert getattr(ca.self, name).weight is getattr(cb.self, name).weight
            assert getattr(ca.self, name).bias is getattr(cb.self, name).bias
        assert ca.self.query.weight is not cb.self.query.weight
        assert ca.output.dense.weight is not cb.output.dense.weight
        assert lm.layers[a].attention.self.query.weight is not lm.layers[b].attention.self.query.weight
        assert lm.layers[a].output.dense.weight is not lm.layers[b].output.dense.weight
    # one parameter each in the optimizer: named_parameters lists a shared projection once
    names = [n for n, _ in model.named_parameters()]
    assert 'language_model.cross_attns.2.self.key.weight' in names
    assert 'language_model.cross_attns.3.self.key.weight' not in names
    assert 'language_model.cross_attns.3.self.query.weight' in names


def test_gradients_reach_both_images_and_the_shared_projections():
    model = _nlvr2_model()
    inputs = torch.randn(6, 3, 32, 32, requires_grad=True)
    losses = model.loss(inputs, _pairs(TEXTS, [1, 0, 1]))
    assert set(losses) == {'loss_nlvr', 'acc_nlvr'} and torch.isfinite(losses['loss_nlvr'])
    losses['loss_nlvr'].backward()
    assert inputs.grad[0::2].abs().sum() > 0 and inputs.grad[1::2].abs().sum() > 0
    lm = model.language_model
    assert lm.cross_attns['2'].self.key.weight.grad.abs().sum() > 0
    assert lm.cross_attns['3'].self.query.weight.grad.abs().sum() > 0  # the right image's own query


def test_each_copy_attends_to_its_own_image():
    model = _nlvr2_model().eval()
    lm = model.language_model
    tok = model.tokenize(TEXTS[:1])
    text = model.encode_text(tok)
    left, right = torch.randn(2, 1, 17, 32).unbind(0)
    out = model.cross_encode(text, tok['attention_mask'], [left, right])
    # by hand: layer 2 sees the left image, 3 the right one, 4 the left, 5 the right
    h = text
    mask = lm.self_attention_mask(h, tok['attention_mask'])
    for layer, ctx in zip((2, 3, 4, 5), (left, right, left, right)):
        h = lm.forward_layer(layer, h, mask, ctx)
    assert torch.allclose(out, h, atol=1e-5)
    swapped = model.cross_encode(text, tok['attention_mask'], [right, left])
    assert not torch.allclose(out, swapped, atol=1e-4)
    with pytest.raises(ValueError, match='num_contexts'):
        model.cross_encode(text, tok['attention_mask'], left)


def test_initialization_from_a_single_image_checkpoint():
    """An XVLM (single-image) state dict: each cross layer k goes to both its copies (self-attention, FFN, and the
    whole cross-attention), as the authors' load_pretrained; an NLVR2-layout state dict loads as is."""
    # the same vocabulary as the NLVR2 model (the shapes must agree)
    cfg = Config.fromfile(SINGLE).model
    cfg.language_model.tokenizer.vocab = VOCAB
    single = _tiny(cfg, mlm_head=None)
    model = _nlvr2_model()
    state = single.state_dict()
    info = model.load_state_dict(state, strict=False)
    assert not [k for k in info.missing_keys if k.startswith('language_model')]
    lm, slm = model.language_model, single.language_model
    for k, copies in ((2, (2, 3)), (3, (4, 5))):
        for c in copies:
            for name in ('query', 'key', 'value'):
                assert torch.equal(getattr(lm.cross_attns[str(c)].self, name).weight,
                                   getattr(slm.cross_attns[str(k)].self, name).weight)
            assert torch.equal(lm.cross_attns[str(c)].output.dense.weight, slm.cross_attns[str(k)].output.dense.weight)
            assert torch.equal(lm.layers[c].intermediate.dense.weight, slm.layers[k].intermediate.dense.weight)
    assert torch.equal(lm.layers[1].attention.self.query.weight, slm.layers[1].attention.self.query.weight)
    # the shared projections are still shared after loading
    assert lm.cross_attns['2'].self.key.weight is lm.cross_attns['3'].self.key.weight
    # a state dict of the two-image layout loads unchanged (the fine-tuning from the text-assignment step)
    other = _nlvr2_model()
    with torch.no_grad():
        for p in other.language_model.parameters():
            p.add_(1.0)
    model.load_state_dict(other.state_dict(), strict=True)
    assert torch.equal(lm.cross_attns['3'].self.query.weight, other.language_model.cross_attns['3'].self.query.weight)


def test_pair_grouping_and_a_statement_without_its_second_image():
    model = _nlvr2_model().eval()
    inputs = torch.randn(6, 3, 32, 32)
    samples = _pairs(TEXTS, [1, 0, 1])
    logits = model._forward(inputs, samples)
    assert logits.shape == (3, 2)
    # statement i is (2i, 2i+1): swapping the last two statements' pairs swaps their logits
    perm = [0, 1, 4, 5, 2, 3]
    swapped = model._forward(inputs[perm], [samples[i] for i in perm])
    assert torch.allclose(swapped, logits[[0, 2, 1]], atol=1e-5)
    with pytest.raises(ValueError, match="'val-2-0'.*no second image"):
        model.loss(inputs[:5], samples[:5])
    broken = samples[:2] + [samples[2], samples[5]] + samples[4:]
    broken[3] = DetDataSample(metainfo=dict(samples[5].metainfo, img_id='val-9-0'))
    with pytest.raises(ValueError, match="'val-1-0'.*no second image"):
        model.loss(inputs, broken)
    flipped = samples[:2] + [samples[3], samples[2]] + samples[4:]
    with pytest.raises(ValueError, match='image_index'):
        model.loss(inputs, flipped)


def test_predict_and_metric():
    model = _nlvr2_model().eval()
    inputs = torch.randn(6, 3, 32, 32)
    samples = _pairs(TEXTS, [1, 0, 1])
    out = model.predict(inputs, samples)
    assert len(out) == 3 and all(o is samples[2 * i] for i, o in enumerate(out))
    for o in out:
        assert o.pred_label in (0, 1) and o.pred_score.shape == (2,)
        assert torch.isclose(o.pred_score.sum(), torch.tensor(1.0)) and o.pred_label == int(o.pred_score.argmax())
    metric = ClassificationAccuracy(prefix='nlvr2', group_key='template')
    metric.process({}, [o.to_dict() for o in out])
    expected = 100.0 * sum(o.pred_label == o.label for o in out) / 3
    result = metric.evaluate(3)
    assert result['nlvr2/accuracy'] == pytest.approx(expected)
    assert result['nlvr2/accuracy_shape_both'] == pytest.approx(expected)


def test_classification_accuracy_by_hand(tmp_path):
    metric = ClassificationAccuracy(group_key='template', outfile_prefix=str(tmp_path / 'out'))
    rows = [dict(img_id='a', pred_label=1, label=1, template='x'),
            dict(img_id='b', pred_label=0, label=1, template='x'),
            dict(img_id='c', pred_label=torch.tensor(1), label=torch.tensor(1), template='y'),
            dict(img_id='d', pred_label=0)]  # no label: dumped, not scored
    metric.process({}, rows)
    result = metric.evaluate(4)
    assert result == {'classification/accuracy': pytest.approx(200 / 3), 'classification/accuracy_x': 50.0,
                      'classification/accuracy_y': 100.0}
    assert osp.isfile(tmp_path / 'out.classification.json')
    with pytest.raises(KeyError, match="'e' has no prediction"):
        ClassificationAccuracy().process({}, [dict(img_id='e', label=1)])
    with pytest.raises(KeyError, match='no ground truth'):
        ClassificationAccuracy().process({}, [dict(img_id='f', pred_label=1)])


def test_text_assignment_pairs():
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([0, 1, 2, 3, 4, 4])
    sim = torch.randn(6, 6)
    seen = set()
    for _ in range(50):
        left, right, labels = text_assignment_pairs(sim, ids, generator=g)
        for b in range(6):
            own = ids[b]
            if labels[b] == LEFT:
                assert left[b] == b and ids[right[b]] != own
            elif labels[b] == RIGHT:
                assert right[b] == b and ids[left[b]] != own
            else:
                assert labels[b] == NEITHER
                assert ids[left[b]] != own and ids[right[b]] != own and left[b] != right[b]
            seen.add(int(labels[b]))
    assert seen == {LEFT, RIGHT, NEITHER}
    # the hard negative follows the similarities: a dominant image is (almost) always drawn
    sim = torch.zeros(3, 3)
    sim[0, 2] = 50.0
    left, right, labels = text_assignment_pairs(sim, torch.arange(3), neither_prob=0.0, generator=g)
    assert {int(left[0]), int(right[0])} == {0, 2}
    with pytest.raises(ValueError, match='another image'):
        text_assignment_pairs(torch.zeros(2, 2), torch.tensor([7, 7]))


def test_text_assignment_model_loss_and_predict():
    cfg = Config.fromfile(PRETRAIN)
    model = _tiny(cfg.model)
    assert not hasattr(model, 'cls_head') and model.ta_head.out_features == 3
    assert not any(p.requires_grad for p in model.itc_head.parameters())  # only read, as the authors
    samples = [DetDataSample(metainfo=dict(text=t, img_id=i, img_shape=(32, 32)))
               for i, t in enumerate(['a red circle', 'two blue squares', 'a small green triangle', 'a circle'])]
    inputs = torch.randn(4, 3, 32, 32)
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_ta', 'acc_ta'} and torch.isfinite(losses['loss_ta'])
    losses['loss_ta'].backward()
    assert model.ta_head.weight.grad.abs().sum() > 0
    assert model.language_model.cross_attns['3'].self.query.weight.grad is not None
    with pytest.raises(ValueError, match="image 9 .*no caption"):
        model.loss(inputs[:1], [DetDataSample(metainfo=dict(text='', img_id=9, img_shape=(32, 32)))])
    out = model.eval().predict(torch.randn(6, 3, 32, 32), _pairs(TEXTS, [0, 0, 0]))
    assert all(o.pred_label in (0, 1, 2) and o.pred_score.shape == (3,) for o in out)
    with pytest.raises(ValueError, match='cls_head=None'):
        MODELS.build(dict(cfg.model, cls_head=dict(type='MLPBlock')))


@pytest.mark.filterwarnings('ignore')
def test_tiny_nlvr2_config_trains(tmp_path):
    """A few iterations of the tiny SynthRef NLVR2 config with MMEngine's Runner (as tools/train.py), validation
    accuracy per template, a checkpoint."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(NLVR2)
    root = str(tmp_path / 'nlvr2')
    generate = dict(num_pairs=dict(train=6, val=3), statements_per_pair=2, image_size=32, seed=0)
    for loader in ('train_dataloader', 'val_dataloader'):
        cfg[loader].update(batch_size=4, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.update(data_root=root, generate=generate)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_iters=3, val_interval=3)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3)]
    cfg.default_hooks.checkpoint.interval = 3
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert osp.isfile(osp.join(cfg.work_dir, 'iter_3.pth'))
    scalars = runner.message_hub.log_scalars
    assert 'train/loss_nlvr' in scalars and 'train/acc_nlvr' in scalars
    assert 0 <= scalars['val/nlvr2/accuracy'].current() <= 100
    assert any(k.startswith('val/nlvr2/accuracy_') for k in scalars)


def test_reference_configs_use_the_released_settings():
    ft = Config.fromfile(osp.join(CONFIGS, 'xvlm-nlvr2_swin-b_bert-base_8xb10-10e_nlvr2.py'))
    assert ft.model.type == 'XVLMNLVR' and ft.model.language_model.cross_attention == dict(start=6, num_contexts=2)
    assert ft.train_dataloader.batch_size == 10 and ft.train_cfg.max_epochs == 10
    assert ft.optim_wrapper.optimizer.lr == 3e-5 and ft.optim_wrapper.paramwise_cfg.custom_keys == {
        'cls_head': dict(lr_mult=2.0)}
    assert ft.model.vision_encoder.img_size == 384 and ft.model.vision_encoder.window_size == 12
    pre = Config.fromfile(osp.join(CONFIGS, 'xvlm-nlvr2-pretrain_swin-b_bert-base_8xb32-1e_4m.py'))
    assert pre.model.type == 'XVLMNLVRPretrain' and pre.model.cls_head is None and pre.model.neither_prob == 1 / 3
    assert pre.train_cfg.max_iters == -(-5114489 // (32 * 8))  # one epoch of the 4M pairs
