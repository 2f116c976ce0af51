"""SOHO's retrieval fine-tuning (ITM only, every caption of the batch against every image, the dictionary's input
features) and the released code's training-only options (the dictionary update over the padding and over the
copies of an image; MVM's entry chosen once per batch); AMP with the two optimizers through the Runner."""
import copy
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config

from mmvlg.models.multimodal.soho import SOHO, sample_itm_texts, sample_mvm_mask
from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

CONFIG = osp.join(REPO_ROOT, 'configs', 'soho', 'soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions.py')
CAPTIONS = ['a big red circle and a small blue square', 'two circles and a square',
            'from left to right: a small green circle, a big white triangle']
RETRIEVAL = dict(losses=('itm', ), itm_cfg=dict(rule='all'), use_dictionary=False, mlm_head=None)


def _cfg():
    register_all_modules()
    return Config.fromfile(CONFIG)


def _model(neck=None, **overrides) -> SOHO:
    model_cfg = copy.deepcopy(_cfg().model)
    if neck:
        model_cfg.neck.update(neck)
    model_cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def _batch(n=4, size=64, ids=None, shapes=None):
    ids = list(range(n)) if ids is None else ids
    shapes = shapes or [(size, size)] * n
    samples = [DetDataSample(metainfo=dict(text=CAPTIONS[i % 3], img_id=ids[i], img_shape=shapes[i],
                                           batch_input_shape=(size, size))) for i in range(n)]
    return torch.randn(n, 3, size, size), samples


# ---------------------------------------------------------------------------------- retrieval fine-tuning
def test_all_pairs_rule():
    ids = torch.tensor([0, 1, 1, 2])
    text_index, labels = sample_itm_texts(ids, texts_per_image=4, rule='all')
    assert torch.equal(text_index, torch.arange(4).repeat(4))  # image b's slots: every caption of the batch
    assert torch.equal(labels.view(4, 4), (ids[:, None] == ids[None]).long())  # the same img_id: a match
    assert int(labels.sum()) == 6


def test_retrieval_finetuning_trains_itm_on_every_pair_without_the_dictionary():
    model = _model(neck=dict(dictionary=None), **RETRIEVAL).train()
    assert model.mlm_head is None and model.neck.dictionary is None
    assert not model.neck.mask_embedding.requires_grad  # no MVM: no gradient, frozen
    inputs, samples = _batch(3, 128, ids=[0, 1, 1])
    seen = {}
    real_fuse = model.fuse

    def fuse(input_ids, attention_mask, tokens, valid):
        seen.update(input_ids=input_ids, tokens=tokens)
        return real_fuse(input_ids, attention_mask, tokens, valid)

    model.fuse = fuse
    losses = model.loss(inputs, samples)
    assert {k for k in losses if k.startswith('loss')} == {'loss_itm'} and 'acc_itm' in losses
    assert 'dict_used' not in losses and 'loss_mvm' not in losses
    assert seen['input_ids'].shape[0] == 9  # 3 images x 3 captions
    unmasked = model.tokenize([samples[j].text for j in [0, 1, 2] * 3])['input_ids']
    assert torch.equal(seen['input_ids'], unmasked)  # no MLM masking
    # the visual tokens are LN(the dictionary's input features + pos), as the downstream tasks
    visual = model.neck(model.backbone(inputs)[-1], model.padding_mask(inputs, samples), use_dictionary=False)
    expected = model.neck.tokens(visual['features'], visual['pos'])
    assert torch.allclose(seen['tokens'], expected.repeat_interleave(3, dim=0), atol=1e-5)
    losses['loss_itm'].backward()
    assert model.backbone.layer4[0].downsample[0].weight.grad.abs().sum() > 0  # (norm2 starts at 0)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.itm_head.parameters())
    assert model.neck.mask_embedding.grad is None


def test_retrieval_with_a_pretraining_neck_leaves_the_dictionary_alone():
    """A neck built with its dictionary (e.g. to keep a pre-training checkpoint's keys): not used, not updated,
    the gate and the entry projection frozen; the gallery is ranked from the dictionary's input features."""
    model = _model(**dict(RETRIEVAL, mlm_head=_cfg().model.mlm_head)).train()
    before = model.neck.dictionary.embed.clone()
    assert not any(p.requires_grad for p in model.neck.gate.parameters())
    assert not any(p.requires_grad for p in model.neck.entry_proj.parameters())
    inputs, samples = _batch(2, 128)
    model.loss(inputs, samples)['loss_itm'].backward()
    assert torch.equal(model.neck.dictionary.embed, before)
    model.eval()
    img = model.encode_images(inputs, samples)
    visual = model.neck(model.backbone(inputs)[-1], model.padding_mask(inputs, samples), use_dictionary=False)
    assert torch.allclose(img['tokens'], model.neck.tokens(visual['features'], visual['pos']))


def test_option_errors():
    with pytest.raises(ValueError, match='use_dictionary'):
        _model(losses=('mvm', 'itm'), use_dictionary=False)
    with pytest.raises(ValueError, match='mlm_head'):
        _model(mlm_head=None)
    with pytest.raises(ValueError, match='model.losses'):
        _model(losses=('itc', ))
    with pytest.raises(ValueError, match='neck.dictionary'):
        _model(neck=dict(dictionary=None))
    with pytest.raises(ValueError, match='choose_per'):
        _model(mvm_cfg=dict(choose_per='image'))
    with pytest.raises(ValueError, match='choose_per'):
        sample_mvm_mask(torch.zeros(2, 3, dtype=torch.long), choose_per='image')


# ------------------------------------------------------------------------- the released code's options
def test_mvm_one_position_per_batch():
    """choose_per='batch' (the code): one grid position for the whole batch; each pair masks the entry it has
    there (every token of it), a pair padded at that position masks nothing."""
    g = torch.Generator().manual_seed(0)
    indices = torch.tensor([[3, 1, 3, 2, 3, -1], [0, 0, 5, 5, 5, 5], [4, 4, 4, -1, -1, -1]])
    positions = set()
    for _ in range(300):
        mask, labels = sample_mvm_mask(indices, mask_prob=1.0, generator=g, choose_per='batch')
        candidates = [p for p in range(6)
                      if all(torch.equal(m, (idx == idx[p]) & (idx[p] >= 0)) for idx, m in zip(indices, mask))]
        assert candidates, mask  # one position explains the masks of all the pairs
        positions.add(candidates[0] if len(candidates) == 1 else min(candidates))
        assert torch.equal(labels, torch.where(mask, indices, torch.full_like(indices, -100)))
    assert {3, 4, 5} & positions  # positions where row 2 is padding were drawn: that row masked nothing then
    masks = [sample_mvm_mask(indices, 1.0, g, 'batch')[0][2].any() for _ in range(300)]
    assert 0 < sum(masks) < 300
    # the default ('pair') masks every row with a valid token
    assert sample_mvm_mask(indices, 1.0, g)[0].any(dim=1).all()


def test_dictionary_update_counts_the_padding_when_asked():
    """update_padding=True (the code): the update averages every position of the padded feature map; the padding
    keeps index -1 and stays out of the usage statistics. The paper's Eq. 4 at momentum 0: each used entry
    becomes the mean of its assigned features, so the two variants give the means over different sets."""
    inputs, samples = _batch(2, 128, shapes=[(128, 128), (64, 64)])
    for update_padding in (False, True):
        model = _model(neck=dict(update_padding=update_padding,
                                 dictionary=dict(type='VisualDictionary', num_entries=64, momentum=0.0,
                                                 update='paper'))).train()
        neck = model.neck
        feat = model.backbone(inputs)[-1]
        padding = model.padding_mask(inputs, samples)
        with torch.no_grad():
            x, valid = neck.project(feat, padding)
            features = x.flatten(2).transpose(1, 2)
            flat_valid = valid.flatten(1)
        assert not flat_valid.all()
        counted = torch.ones_like(flat_valid) if update_padding else flat_valid
        old = neck.dictionary.embed.clone()
        vecs = features[counted]
        assign = torch.cdist(vecs, old).argmin(dim=1)  # brute-force nearest entries (before the update)
        out = neck(feat, padding)
        expected = old.clone()
        for j in assign.unique():
            expected[j] = vecs[assign == j].mean(dim=0)
        assert torch.allclose(neck.dictionary.embed, expected, atol=1e-5)
        assert (out['indices'][~flat_valid] == -1).all()
        assert torch.equal(out['indices'][flat_valid], torch.cdist(features[flat_valid], old).argmin(dim=1))
        valid_counts = torch.bincount(out['indices'][flat_valid], minlength=64)
        assert float(out['used']) == float((valid_counts > 0).sum())


def test_dictionary_update_counts_the_copies_of_an_image_when_asked():
    """update_per_pair=True (the code, whose neck runs on the 4 copies of each image): the code's moving averages
    of the counts and sums grow 4 times as much in one step."""
    inputs, samples = _batch(3, 128)
    sizes = {}
    for per_pair in (False, True):
        model = _model(update_per_pair=per_pair).train()
        model.loss(inputs, samples)
        sizes[per_pair] = (model.neck.dictionary.cluster_size.clone(), model.neck.dictionary.embed_avg.clone())
    t = _cfg().model.itm_cfg.get('texts_per_image', 4)
    assert torch.allclose(sizes[True][0], t * sizes[False][0]) and sizes[False][0].sum() > 0
    assert torch.allclose(sizes[True][1], t * sizes[False][1], atol=1e-5)


def test_dictionary_weights_are_multiplicities():
    """VisualDictionary(weights): a vector of weight w counts as w copies of it (code and paper updates)."""
    from mmvlg.models.layers import VisualDictionary
    torch.manual_seed(0)
    x = torch.randn(5, 4)
    w = torch.tensor([1.0, 3.0, 2.0, 1.0, 1.0])
    repeated = x.repeat_interleave(w.long(), dim=0)
    for rule in ('code', 'paper'):
        a = VisualDictionary(6, 4, momentum=0.4, update=rule)
        b = copy.deepcopy(a)
        a(x, update=True, weights=w)
        b(repeated, update=True)
        assert torch.allclose(a.embed, b.embed, atol=1e-6), rule
        assert torch.allclose(a.cluster_size, b.cluster_size), rule
    with pytest.raises(ValueError, match='weights'):
        a(x, update=True, weights=w[:3])


# --------------------------------------------------------------------------- AMP through the Runner
@pytest.mark.filterwarnings('ignore')
def test_two_optimizers_with_amp_through_the_runner(tmp_path, monkeypatch):
    """optim_wrapper.type='AmpOptimWrapper' (what tools/train.py --amp sets) over the paper's two optimizers:
    both step, the forward runs under bfloat16 autocast on the CPU (AmpOptimWrapper's accelerator check lifted),
    the weights stay fp32."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapperDict
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    from mmengine.runner import Runner
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    cfg = _cfg()
    generate = dict(num_scenes=dict(train=8, val=3), image_size=32, phrasings=['list', 'count'], seed=0)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=4, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.update(data_root=str(tmp_path / 'caps'), generate=generate)
    cfg.train_cfg.update(max_iters=2, val_interval=100)
    cfg.param_scheduler = []
    cfg.optim_wrapper = dict(
        constructor='ModuleOptimWrapperConstructor', type='AmpOptimWrapper', dtype='bfloat16',
        backbone=dict(modules=['backbone'], type='OptimWrapper', optimizer=dict(type='SGD', lr=1e-2, momentum=0.9),
                      clip_grad=dict(max_norm=10.0)),
        others=dict(modules=None, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01)))
    cfg.default_hooks.checkpoint.interval = 2
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    model = runner.model
    dtypes = []
    model.backbone.layer4.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype) if m.training else None)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    runner.train()
    assert isinstance(runner.optim_wrapper, OptimWrapperDict)
    assert all(isinstance(w, AmpOptimWrapper) for w in runner.optim_wrapper.values())
    assert len(dtypes) == 2 and set(dtypes) == {torch.bfloat16}  # the two training forwards
    changed = {n for n, p in model.named_parameters() if n in before and not torch.equal(p, before[n])}
    assert any(n.startswith('backbone.') for n in changed) and any(n.startswith('language_model.') for n in changed)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_release_config_trains_as_the_released_code_and_paper_configs_do_not():
    """The release pre-training config sets the code's training-only options; the paper's configs keep the
    clean defaults (the paper says nothing of padding, copies or one MVM position per batch)."""
    import os.path as osp

    from mmengine.config import Config
    root = osp.join(osp.dirname(__file__), '..', '..', '..', 'configs', 'soho')
    release = Config.fromfile(osp.join(root, 'soho-release_r18_bert-base-3l_8xb16-40e_coco-vg.py')).model
    assert release.neck.update_padding is True and release.update_per_pair is True
    assert release.mvm_cfg.choose_per == 'batch'
    for name in ['soho_r101_bert-base_32xb128-40e_coco-vg.py', 'soho_r18_bert-base-3l_32xb128-40e_coco-vg.py']:
        paper = Config.fromfile(osp.join(root, name)).model
        assert not paper.neck.get('update_padding', False) and not paper.get('update_per_pair', False)
        assert paper.mvm_cfg.get('choose_per', 'pair') == 'pair'
