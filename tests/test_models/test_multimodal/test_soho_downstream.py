"""SOHO's downstream models: SOHOVQA (the dictionary skipped, the released head's shape, soft-score BCE, a SOHO
pre-training checkpoint loads with only its pre-training parts left out) and SOHOPairClassifier (NLVR2's two
[CLS] concatenated, visual entailment's one), bad input, and a few iterations of the tiny configs through
MMEngine's Runner with validation."""
import copy
import os.path as osp
import re

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config

from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

CFG_DIR = osp.join(REPO_ROOT, 'configs', 'soho')
PRETRAIN = osp.join(CFG_DIR, 'soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions.py')
VQA = osp.join(CFG_DIR, 'soho-vqa_r18-tiny_bert-tiny_1xb32-2k_synthref-vqa.py')
NLVR2 = osp.join(CFG_DIR, 'soho-nlvr2_r18-tiny_bert-tiny_1xb16-2k_synthref-nlvr2.py')


def _cfg(path):
    register_all_modules()
    return Config.fromfile(path)


def _build(path, **overrides):
    model_cfg = copy.deepcopy(_cfg(path).model)
    model_cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def _vqa_samples(n=3, size=64):
    questions = ['what color is the circle?', 'how many squares are there?', 'is there a red triangle?']
    samples = []
    for i in range(n):
        samples.append(DetDataSample(metainfo=dict(
            text=questions[i % 3], img_id=i, question_id=100 + i, img_shape=(size, size), answer_labels=[i, 2],
            answer_scores=[1.0, 0.3], answers=['yes'] * 10)))
    return torch.randn(n, 3, size, size), samples


# ------------------------------------------------------------------------------------------------ VQA
def test_vqa_head_has_the_released_shape():
    model = _build(VQA)
    head = model.vqa_head
    assert [type(m).__name__ for m in head.classifier] == ['Linear', 'ReLU', 'Dropout', 'Linear']
    assert head.classifier[0].weight.shape == (256, 64) and head.classifier[3].weight.shape == (19, 256)
    assert head.classifier[2].p == 0.5
    assert {k for k in model.state_dict() if k.startswith('vqa_head.')} == {
        'vqa_head.classifier.0.weight', 'vqa_head.classifier.0.bias', 'vqa_head.classifier.3.weight',
        'vqa_head.classifier.3.bias'}
    assert model.neck.dictionary is None and not model.neck.mask_embedding.requires_grad


def test_vqa_reads_the_dictionary_input_features():
    """With a dictionary in the neck, the downstream tokens are still LN(features + pos): the dictionary is not
    looked up (its entries and statistics do not change, even in training mode)."""
    pre = _cfg(PRETRAIN).model.neck
    model = _build(VQA, neck=dict(pre)).train()
    before = {k: v.clone() for k, v in model.neck.dictionary.state_dict().items()}
    inputs, samples = _vqa_samples()
    visual = model.encode_images(inputs, samples)
    feats = model.backbone(inputs)[-1]
    raw = model.neck(feats, None, use_dictionary=False)
    assert torch.allclose(visual['tokens'], model.neck.norm(raw['features'] + raw['pos']))
    model.loss(inputs, samples)
    for k, v in model.neck.dictionary.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_vqa_loss_gradients_and_predict():
    model = _build(VQA)
    inputs, samples = _vqa_samples()
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_vqa', 'acc_vqa'} and losses['loss_vqa'] > 0 and 0 <= losses['acc_vqa'] <= 1
    losses['loss_vqa'].backward()
    for name in ('backbone.layer4.0.downsample.0.weight', 'neck.proj.conv.weight',
                 'language_model.model.encoder.layer.2.output.dense.weight',
                 'language_model.model.embeddings.word_embeddings.weight', 'vqa_head.classifier.3.weight'):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    # the targets are the soft scores: sample 0 has answer 0 at 1.0 and answer 2 at 0.3
    target = model.vqa_head.targets([ds.answer_labels for ds in samples], [ds.answer_scores for ds in samples])
    assert target[0, 0] == 1.0 and target[0, 2] == pytest.approx(0.3) and target[0].sum() == pytest.approx(1.3)
    model.eval()
    with torch.no_grad():
        logits = model(inputs, samples, mode='tensor')
        out = model.predict(inputs, samples)
    assert logits.shape == (3, 19)
    for ds, row in zip(out, logits):
        assert ds.pred_answer == model.vqa_head.answers[int(row.argmax())]
        assert int(ds.pred_answer_label) == int(row.argmax())
        assert float(ds.pred_answer_score) == pytest.approx(float(row.sigmoid().max()), abs=1e-6)


def test_vqa_bad_input_is_named():
    model = _build(VQA)
    inputs, samples = _vqa_samples()
    samples[1].set_metainfo(dict(answer_labels=[19], answer_scores=[1.0]))
    with pytest.raises(ValueError, match=r"question 101 .*answer label 19 outside the 19 answers"):
        model.loss(inputs, samples)
    inputs, samples = _vqa_samples()
    del samples[2].answer_labels
    with pytest.raises(KeyError, match='102'):
        model.loss(inputs, samples)


def _pretrained_state():
    """A tiny SOHO pre-training with perturbed weights (a trained checkpoint's layout)."""
    pre = _build(PRETRAIN)
    with torch.no_grad():
        for p in pre.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return pre, {k: v.clone() for k, v in pre.state_dict().items()}


def _hook_patterns(cfg):
    hook = [h for h in cfg.custom_hooks if h['type'] == 'CheckpointKeysHook'][0]
    return hook.get('allow_unexpected', []), hook.get('allow_missing', [])


@pytest.mark.parametrize('path', [VQA, NLVR2])
def test_a_pretraining_checkpoint_loads_into_the_downstream_model(path):
    """load_from a SOHO pre-training: the backbone, the neck's conv / norm and the transformer load; the
    dictionary parts and the pre-training heads are the only unexpected keys, the new head (and the remapped word
    embeddings) the only missing ones, all allowed by the config's CheckpointKeysHook; the words of the captions'
    vocabulary keep their pre-trained rows (checkpoint_vocab)."""
    from mmengine.runner.checkpoint import load_state_dict
    pre, state = _pretrained_state()
    cfg = _cfg(path)
    model = _build(path)
    own = model.state_dict()
    unexpected = sorted(set(state) - set(own))
    missing = sorted(k for k in own if k not in state or state[k].shape != own[k].shape)
    allow_unexpected, allow_missing = _hook_patterns(cfg)
    assert unexpected and all(any(re.search(p, k) for p in allow_unexpected) for k in unexpected), unexpected
    assert all(any(re.search(p, k) for p in allow_missing) for k in missing), missing
    assert any(k.startswith('neck.dictionary.') for k in unexpected)
    assert any(k.startswith('mlm_head.') for k in unexpected) and any(k.startswith('itm_head.') for k in unexpected)
    load_state_dict(model, state, strict=False)
    after = model.state_dict()
    for key in own:
        if key in state and state[key].shape == own[key].shape:
            assert torch.equal(after[key], state[key]), key
    src, dst = pre.language_model.tokenizer, model.language_model.tokenizer
    emb = 'language_model.model.embeddings.word_embeddings.weight'
    for word in ['[CLS]', '[SEP]', 'the', 'red', 'circle', 'left']:
        assert torch.equal(after[emb][dst.convert_tokens_to_ids(word)], state[emb][src.convert_tokens_to_ids(word)])


# ------------------------------------------------------------------------------------ pair classifier
def _pair_batch(num_images, n=2, size=64, labels=(1, 0)):
    samples, k = [], 0
    for i in range(n):
        for j in range(num_images):
            samples.append(DetDataSample(metainfo=dict(
                text=['both images contain a circle', 'there are two red circles'][i % 2], img_id=f's{i}',
                label=labels[i], image_index=j, img_shape=(size, size), img_path=f'{i}-{j}.png')))
            k += 1
    return torch.randn(k, 3, size, size), samples


def _ve_model():
    model_cfg = copy.deepcopy(_cfg(NLVR2).model)
    model_cfg.update(num_images=1, num_classes=3)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def test_nlvr2_concatenates_the_two_cls():
    model = _build(NLVR2).eval()
    assert model.num_images == 2 and model.cls_head[0].in_features == 128 and model.cls_head[3].out_features == 2
    inputs, samples = _pair_batch(2)
    with torch.no_grad():
        logits = model(inputs, samples, mode='tensor')
        visual = model.encode_images(inputs, samples)
        cls = model.fused_cls([s.text for s in samples], visual['tokens'], visual['valid'])
        expected = model.cls_head(torch.cat([cls[0::2], cls[1::2]], dim=1))
        swapped = model(inputs[[1, 0, 3, 2]], samples, mode='tensor')
    assert logits.shape == (2, 2) and torch.allclose(logits, expected, atol=1e-5)
    assert not torch.allclose(logits, swapped)  # left and right are not interchangeable
    out = model.predict(inputs, samples)
    assert len(out) == 2 and [ds.img_id for ds in out] == ['s0', 's1']
    assert all(ds.pred_label == int(ds.pred_score.argmax()) for ds in out)


def test_pair_losses_and_gradients():
    for model, num_images, key in ((_build(NLVR2), 2, 'nlvr'), (_ve_model(), 1, 've')):
        inputs, samples = _pair_batch(num_images, labels=(1, 2) if num_images == 1 else (1, 0))
        losses = model.loss(inputs, samples)
        assert set(losses) == {f'loss_{key}', f'acc_{key}'}
        losses[f'loss_{key}'].backward()
        for name in ('backbone.layer4.0.downsample.0.weight', 'neck.proj.conv.weight', 'cls_head.3.weight',
                     'language_model.model.encoder.layer.0.attention.self.query.weight'):
            grad = dict(model.named_parameters())[name].grad
            assert grad is not None and grad.abs().sum() > 0, (key, name)
    model = _ve_model().eval()
    inputs, samples = _pair_batch(1, n=3, labels=(0, 1, 2))
    with torch.no_grad():
        out = model.predict(inputs, samples)
    assert len(out) == 3 and all(ds.pred_score.shape == (3, ) for ds in out)


def test_pair_bad_input_is_named():
    model = _build(NLVR2)
    inputs, samples = _pair_batch(2)
    with pytest.raises(ValueError, match=r"SOHOPairClassifier: .*statement 's1'.*no second image"):
        model.loss(inputs[:3], samples[:3])
    ve = _ve_model()
    inputs, samples = _pair_batch(1, labels=(0, 3))
    with pytest.raises(ValueError, match=r"sample 's1' \(1-0.png\) has the label 3; expected an int in \[0, 3\)"):
        ve.loss(inputs, samples)
    with pytest.raises(ValueError, match='num_images must be 1 or 2'):
        _build(NLVR2, num_images=3)


# ------------------------------------------------------------------------------------------------ runner
def _runner_cfg(cfg, tmp_path, data_updates, batch_size=4, iters=3):
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=batch_size, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.update(data_updates)
    cfg.train_cfg.update(max_iters=iters, val_interval=iters)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=iters)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=iters)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.work_dir = str(tmp_path / 'work')
    return cfg


@pytest.mark.filterwarnings('ignore')
def test_vqa_tiny_config_trains_and_validates(tmp_path):
    from mmengine.runner import Runner

    from mmvlg.datasets.synthetic.vqa import question_vocabulary, synthref_vqa_answers
    cfg = _cfg(VQA)
    assert cfg.question_vocab == question_vocabulary() and cfg.answers == synthref_vqa_answers()
    assert cfg.train_dataloader.batch_size == 32 and cfg.auto_scale_lr.base_batch_size == 32
    assert cfg.train_cfg.max_iters == 2000
    gen = dict(num_scenes=dict(train=12, val=4), questions_per_scene=4, image_size=32, seed=0)
    cfg = _runner_cfg(cfg, tmp_path, dict(data_root=str(tmp_path / 'vqa') + '/', generate=gen))
    runner = Runner.from_cfg(cfg)
    before = runner.model.vqa_head.classifier[3].weight.detach().clone()
    runner.train()
    scalars = runner.message_hub.log_scalars
    for key in ('train/loss_vqa', 'train/acc_vqa', 'val/vqa/accuracy'):
        assert key in scalars, key
    assert 0 <= scalars['val/vqa/accuracy'].current() <= 100
    assert not torch.equal(runner.model.vqa_head.classifier[3].weight, before)


@pytest.mark.filterwarnings('ignore')
def test_nlvr2_tiny_config_trains_and_validates(tmp_path):
    from mmengine.runner import Runner

    from mmvlg.datasets.synthetic.captions import caption_vocabulary
    from mmvlg.datasets.synthetic.nlvr2 import statement_vocabulary
    cfg = _cfg(NLVR2)
    assert cfg.nlvr2_vocab == sorted(set(caption_vocabulary()) | set(statement_vocabulary()))
    assert cfg.train_dataloader.batch_size == 16 and cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_cfg.max_iters == 2000
    gen = dict(num_pairs=dict(train=8, val=4), statements_per_pair=2, image_size=32, seed=0)
    cfg = _runner_cfg(cfg, tmp_path, dict(data_root=str(tmp_path / 'nlvr2') + '/', generate=gen), batch_size=2)
    runner = Runner.from_cfg(cfg)
    before = runner.model.cls_head[3].weight.detach().clone()
    runner.train()
    scalars = runner.message_hub.log_scalars
    for key in ('train/loss_nlvr', 'train/acc_nlvr', 'val/nlvr2/accuracy'):
        assert key in scalars, key
    assert 0 <= scalars['val/nlvr2/accuracy'].current() <= 100
    assert not torch.equal(runner.model.cls_head[3].weight, before)


@pytest.mark.filterwarnings('ignore')
def test_ve_tiny_config_trains_and_validates(tmp_path):
    from mmengine.runner import Runner
    cfg = _cfg(osp.join(CFG_DIR, 'soho-ve_r18-tiny_bert-tiny_1xb32-2k_synthref-ve.py'))
    assert cfg.model.num_images == 1 and cfg.model.num_classes == 3
    assert cfg.train_dataloader.batch_size == 32 and cfg.auto_scale_lr.base_batch_size == 32
    assert cfg.train_cfg.max_iters == 2000
    gen = dict(num_scenes=dict(train=12, val=6), hypotheses_per_scene=3, image_size=32, seed=0)
    cfg = _runner_cfg(cfg, tmp_path, dict(data_root=str(tmp_path / 've') + '/', generate=gen))
    runner = Runner.from_cfg(cfg)
    before = runner.model.cls_head[3].weight.detach().clone()
    runner.train()
    scalars = runner.message_hub.log_scalars
    for key in ('train/loss_ve', 'train/acc_ve', 'val/ve/accuracy'):
        assert key in scalars, key
    assert 0 <= scalars['val/ve/accuracy'].current() <= 100
    assert any(k.startswith('val/ve/accuracy_') for k in scalars)  # per template
    assert not torch.equal(runner.model.cls_head[3].weight, before)


@pytest.mark.filterwarnings('ignore')
def test_vqa_fine_tunes_from_a_pretraining_checkpoint_with_load_from(tmp_path):
    """The documented route: load_from a SOHO pre-training checkpoint through the Runner; the config's
    CheckpointKeysHook lists nothing outside its allow-lists, and the transformer starts from the checkpoint."""
    from mmengine.runner import Runner
    _, state = _pretrained_state()
    ckpt = str(tmp_path / 'pretrain.pth')
    torch.save(dict(state_dict=state, meta=dict()), ckpt)
    gen = dict(num_scenes=dict(train=8, val=4), questions_per_scene=4, image_size=32, seed=0)
    cfg = _runner_cfg(_cfg(VQA), tmp_path, dict(data_root=str(tmp_path / 'vqa') + '/', generate=gen), iters=1)
    cfg.load_from = ckpt
    for hook in cfg.custom_hooks:  # any key outside the allow-lists stops the run
        if hook['type'] == 'CheckpointKeysHook':
            hook['on_mismatch'] = 'error'
    runner = Runner.from_cfg(cfg)
    runner.train()
    key = 'language_model.model.encoder.layer.1.attention.self.query.weight'
    # one AdamW step (lr 2.5e-4) away from the checkpoint, far from a fresh initialization
    assert torch.allclose(runner.model.state_dict()[key], state[key], atol=1e-3)
