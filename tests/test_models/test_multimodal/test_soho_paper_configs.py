"""SOHO's paper-scale downstream configs (retrieval on COCO and Flickr30k, VQA v2, NLVR2, SNLI-VE): the paper's
settings, the data blocks shared with X-VLM's configs (and, for VQA v2, with SOHO's release VQA config), a
pre-training checkpoint of the paper's config loading into each (only the keys the config's CheckpointKeysHook
allows differ), and a training step of each with tiny encoders in place of R-101 and BERT-base."""
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

CFG_DIR = osp.join(REPO_ROOT, 'configs')
PRETRAIN = osp.join(CFG_DIR, 'soho', 'soho_r101_bert-base_32xb128-40e_coco-vg.py')
TINY = osp.join(CFG_DIR, 'soho', 'soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions.py')
COCO = osp.join(CFG_DIR, 'soho', 'soho-retrieval_r101_bert-base_8xb24-20e_coco.py')
FLICKR = osp.join(CFG_DIR, 'soho', 'soho-retrieval_r101_bert-base_8xb24-20e_flickr30k.py')
NLVR2 = osp.join(CFG_DIR, 'soho', 'soho-nlvr2_r101_bert-base_8xb16-18e_nlvr2.py')
VE = osp.join(CFG_DIR, 'soho', 'soho-ve_r101_bert-base_8xb16-6e_snli-ve.py')
VQA = osp.join(CFG_DIR, 'soho', 'soho-vqa_r101_bert-base_8xb32-18e_vqav2.py')
RELEASE_VQA = osp.join(CFG_DIR, 'soho', 'soho-release-vqa_r18_bert-base-3l_8xb32-20e_vqav2.py')
XVLM_VQA = osp.join(CFG_DIR, 'xvlm', 'xvlm-vqa_swin-b_bert-base_8xb24-10e_vqav2.py')
ANSWERS = ['yes', 'no', '2', 'red', 'circle']
CAPTIONS = ['a big red circle and a small blue square', 'two circles and a square', 'a small green circle']


def _cfg(path):
    register_all_modules()
    return Config.fromfile(path)


def _tiny_model_cfg(path):
    """The config's model with the tiny pre-training's ResNet and 3-layer BERT in place of R-101 and BERT-base."""
    tiny = _cfg(TINY).model
    model = copy.deepcopy(_cfg(path).model)
    model.backbone = copy.deepcopy(tiny.backbone)
    model.language_model = copy.deepcopy(tiny.language_model)
    model.neck.in_channels = tiny.neck.in_channels
    if model.neck.get('dictionary'):
        model.neck.dictionary.num_entries = 16
    if model.get('vqa_head'):
        model.vqa_head.answers = ANSWERS  # the config's answer list file is not here
    return model


def _build(model_cfg):
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


# ------------------------------------------------------------------------------------------- settings
def test_retrieval_configs_have_the_papers_settings():
    for path, ann in ((COCO, 'finetune/coco_test.json'), (FLICKR, 'finetune/flickr30k_test.json')):
        cfg = _cfg(path)
        assert cfg.model.type == 'SOHO' and cfg.model.losses == ('itm', ) and cfg.model.itm_cfg.rule == 'all'
        assert cfg.model.use_dictionary is False and cfg.model.mlm_head is None
        assert cfg.model.backbone.depth == 101 and cfg.model.language_model.name_or_path == 'bert-base-uncased'
        assert cfg.train_dataloader.batch_size == 24 and cfg.auto_scale_lr.base_batch_size == 8 * 24
        assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4, weight_decay=1e-2)
        assert cfg.param_scheduler == [dict(type='MultiStepLR', by_epoch=True, milestones=[3, 5, 9, 13], gamma=0.5,
                                            begin=0, end=20)]
        assert cfg.train_cfg.max_epochs == 20
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        assert cfg.test_cfg.type == 'RetrievalTestLoop'
        assert all(e.type == 'RetrievalRecallMetric' for e in evaluators)
        # COCO: the 5k test and the 1k test (five folds); Flickr30k: its 1k test gallery
        assert [e.get('num_folds', 1) for e in evaluators] == ([1, 5] if path == COCO else [1])
        assert cfg.test_dataloader.dataset.ann_file == ann


def test_nlvr2_and_ve_configs_have_the_papers_settings():
    nlvr2, ve = _cfg(NLVR2), _cfg(VE)
    assert (nlvr2.model.num_images, nlvr2.model.num_classes) == (2, 2)
    assert nlvr2.train_dataloader.batch_size * 8 == 128  # half of VQA's 256
    assert nlvr2.train_cfg.max_epochs == 18
    assert nlvr2.param_scheduler[0].milestones == [12, 16] and nlvr2.param_scheduler[0].gamma == 0.1
    assert nlvr2.optim_wrapper.backbone.optimizer == dict(type='SGD', lr=1e-2, momentum=0.9, weight_decay=5e-4)
    assert nlvr2.optim_wrapper.others.optimizer == dict(type='AdamW', lr=1e-4, weight_decay=1e-2)
    assert nlvr2.model_wrapper_cfg.type == 'mmvlg.engine.MultiOptimDistributedDataParallel'
    assert (ve.model.num_images, ve.model.num_classes, ve.model.cls_head.type) == (1, 3, 'Linear')
    assert ve.train_dataloader.batch_size * 8 == 128 and ve.train_cfg.max_epochs == 6
    assert ve.optim_wrapper.optimizer.lr == 1e-4
    assert ve.param_scheduler[0].milestones == [4] and ve.param_scheduler[0].gamma == 0.1  # 1e-4 -> 1e-5


def test_vqa_config_has_the_papers_settings():
    cfg = _cfg(VQA)
    assert cfg.model.type == 'SOHOVQA' and cfg.model.vqa_head.type == 'SOHOVQAHead'
    assert cfg.model.vqa_head.answers == 'data/vqav2/answer_list.json'
    assert cfg.model.neck.dictionary is None  # the dictionary's input features (section 4.2)
    assert cfg.model.backbone.depth == 101 and cfg.model.language_model.name_or_path == 'bert-base-uncased'
    assert cfg.train_dataloader.batch_size == 32 and cfg.auto_scale_lr.base_batch_size == 8 * 32 == 256
    assert cfg.train_cfg.max_epochs == 18
    assert cfg.param_scheduler == [dict(type='MultiStepLR', by_epoch=True, milestones=[12, 16], gamma=0.1,
                                        begin=0, end=18)]
    # the pre-training's optimizers and learning rates (section 4.1), no accumulation: 256 questions an update
    pretrain = _cfg(PRETRAIN).optim_wrapper
    assert cfg.optim_wrapper.constructor == 'ModuleOptimWrapperConstructor'
    for key in ('backbone', 'others'):
        assert cfg.optim_wrapper[key].optimizer == pretrain[key].optimizer, key
        assert cfg.optim_wrapper[key].get('accumulative_counts', 1) == 1
    assert cfg.optim_wrapper.backbone.optimizer == dict(type='SGD', lr=1e-2, momentum=0.9, weight_decay=5e-4)
    assert cfg.optim_wrapper.others.optimizer == dict(type='AdamW', lr=1e-4, weight_decay=1e-2)
    assert cfg.model_wrapper_cfg.type == 'mmvlg.engine.MultiOptimDistributedDataParallel'
    # NLVR2 "the same as VQA settings": optimizers, epochs and learning-rate steps agree
    nlvr2 = _cfg(NLVR2)
    assert nlvr2.optim_wrapper == cfg.optim_wrapper and nlvr2.param_scheduler == cfg.param_scheduler
    resize = dict(type='mmdet.Resize', scale=(1000, 600), keep_ratio=True)  # the pre-training's image size
    assert all(resize in cfg[k].dataset.pipeline for k in ('train_dataloader', 'val_dataloader', 'test_dataloader'))
    assert cfg.val_evaluator.type == 'VQAAccuracy' and cfg.default_hooks.checkpoint.save_best == 'vqa/accuracy'


# ------------------------------------------------------------------------- data shared with X-VLM
XVLM_DATA_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator',
                  'val_cfg', 'test_cfg')


@pytest.mark.parametrize('xvlm,base', [
    ('xvlm_swin-b_bert-base_8xb20-10e_coco-retrieval.py', 'coco_retrieval.py'),
    ('xvlm_swin-b_bert-base_8xb20-10e_flickr30k-retrieval.py', 'flickr30k_retrieval.py'),
    ('xvlm-nlvr2_swin-b_bert-base_8xb10-10e_nlvr2.py', 'nlvr2.py'),
])
def test_the_data_bases_give_xvlms_data_blocks(tmp_path, xvlm, base):
    """An X-VLM config written on the shared _base_ dataset file (its pipelines and batch sizes set) resolves to
    X-VLM's data blocks: the SOHO configs read the same files the same way."""
    ref = _cfg(osp.join(CFG_DIR, 'xvlm', xvlm))
    lines = [f'_base_ = [{osp.join(CFG_DIR, "_base_", "datasets", base)!r}]']
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        block = ref[key]
        lines.append(f'{key} = dict(batch_size={block.batch_size}, dataset=dict(pipeline={block.dataset.pipeline!r}))')
    lines.append(f'val_evaluator = {ref.val_evaluator.to_dict()!r}')
    lines.append('test_evaluator = val_evaluator')
    path = tmp_path / 'xvlm_on_base.py'
    path.write_text('\n'.join(lines) + '\n')
    cfg = _cfg(str(path))
    for key in XVLM_DATA_KEYS:
        assert cfg[key] == ref[key], key


@pytest.mark.parametrize('ref_path', [RELEASE_VQA, XVLM_VQA])
def test_the_vqa_data_base_gives_the_release_and_xvlm_vqa_blocks(tmp_path, ref_path):
    """A config on _base_/datasets/vqav2.py with the pipelines and batch sizes of SOHO's release VQA config or
    X-VLM's VQA config resolves to their data blocks: the paper VQA config reads the same data the same way."""
    ref = _cfg(ref_path)
    lines = [f'_base_ = [{osp.join(CFG_DIR, "_base_", "datasets", "vqav2.py")!r}]']
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        block = ref[key]
        lines.append(f'{key} = dict(batch_size={block.batch_size}, dataset=dict(pipeline={block.dataset.pipeline!r}))')
    path = tmp_path / 'vqa_on_base.py'
    path.write_text('\n'.join(lines) + '\n')
    cfg = _cfg(str(path))
    for key in XVLM_DATA_KEYS:
        assert cfg[key] == ref[key], key


def test_the_soho_configs_use_the_shared_data():
    for path, base in ((COCO, 'coco_retrieval.py'), (FLICKR, 'flickr30k_retrieval.py'), (NLVR2, 'nlvr2.py'),
                       (VE, 'snli_ve.py'), (VQA, 'vqav2.py')):
        cfg, data = _cfg(path), _cfg(osp.join(CFG_DIR, '_base_', 'datasets', base))
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            mine, shared = copy.deepcopy(cfg[key]), copy.deepcopy(data[key])
            mine.pop('batch_size'), shared.pop('batch_size')
            mine.dataset.pop('pipeline'), shared.dataset.pop('pipeline')
            assert mine == shared, (path, key)
        assert cfg.val_evaluator == data.val_evaluator


# ---------------------------------------------------------- a pre-training checkpoint, a training step
def _batch(path, n=3, size=64):
    inputs = torch.randn(n * (2 if path == NLVR2 else 1), 3, size, size)
    samples = []
    for i in range(n):
        meta = dict(text=CAPTIONS[i % 3], img_id=i, img_shape=(size, size), img_path=f'{i}.png', label=i % 2)
        if path == VQA:
            meta.update(question_id=100 + i, answer_labels=[i % len(ANSWERS), 4], answer_scores=[1.0, 0.3])
        if path == NLVR2:
            samples += [DetDataSample(metainfo=dict(meta, img_id=f's{i}', image_index=j)) for j in range(2)]
        else:
            samples.append(DetDataSample(metainfo=meta))
    return inputs, samples


@pytest.mark.parametrize('path', [COCO, FLICKR, NLVR2, VE, VQA])
def test_a_paper_pretraining_checkpoint_loads_and_the_model_trains(path):
    from mmengine.runner.checkpoint import load_state_dict
    cfg = _cfg(path)
    pre = _build(_tiny_model_cfg(PRETRAIN))
    with torch.no_grad():
        for p in pre.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    state = {k: v.clone() for k, v in pre.state_dict().items()}
    model = _build(_tiny_model_cfg(path))
    own = model.state_dict()
    hook = [h for h in cfg.custom_hooks if h['type'] == 'CheckpointKeysHook'][0]
    unexpected = sorted(set(state) - set(own))
    missing = sorted(k for k in own if k not in state or state[k].shape != own[k].shape)
    assert unexpected and all(any(re.search(p, k) for p in hook.get('allow_unexpected', [])) for k in unexpected)
    assert all(any(re.search(p, k) for p in hook.get('allow_missing', [])) for k in missing), missing
    if model.__class__.__name__ == 'SOHO':
        assert not missing and 'itm_head.fc.weight' in own  # the pre-trained ITM head is the retrieval classifier
    load_state_dict(model, state, strict=False)
    after = model.state_dict()
    assert all(torch.equal(after[k], state[k]) for k in own if k not in missing)

    model.train()
    inputs, samples = _batch(path)
    losses = model.loss(inputs, samples)
    loss_keys = {k for k in losses if k.startswith('loss')}
    assert loss_keys == {'loss_itm'} if path in (COCO, FLICKR) else len(loss_keys) == 1
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert trainable and not no_grad, no_grad  # every trainable parameter is used (no unused one under DDP)
