"""SOHO: MVM masks exactly the tokens of the chosen dictionary entry, ITM negatives are never positives, the
neck's fusions, the pre-training losses and gradients, bad input, and a few iterations of the tiny config through
MMEngine's Runner."""
import copy
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config

from mmvlg.datasets.synthetic.captions import caption_vocabulary
from mmvlg.models.multimodal.soho import SOHO, sample_itm_texts, sample_mvm_mask
from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

CONFIG = osp.join(REPO_ROOT, 'configs', 'soho', 'soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions.py')
CAPTIONS = ['a big red circle and a small blue square', 'two circles and a square',
            'from left to right: a small green circle, a big white triangle']


def _cfg():
    register_all_modules()
    return Config.fromfile(CONFIG)


def _model(**overrides) -> SOHO:
    model_cfg = copy.deepcopy(_cfg().model)
    model_cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def _batch(n=4, size=64, ids=None):
    ids = list(range(n)) if ids is None else ids
    samples = [DetDataSample(metainfo=dict(text=CAPTIONS[i % 3], img_id=ids[i], img_shape=(size, size)))
               for i in range(n)]
    return torch.randn(n, 3, size, size), samples


# ------------------------------------------------------------------------------------------------ MVM
def test_mvm_masks_exactly_the_tokens_of_the_chosen_entry():
    g = torch.Generator().manual_seed(0)
    indices = torch.tensor([[3, 1, 3, 2, 3, -1], [0, 0, 5, 5, 5, 5], [-1, -1, -1, -1, -1, -1], [7, 7, 7, 7, 7, 7]])
    seen = [set() for _ in indices]
    for _ in range(200):
        mask, labels = sample_mvm_mask(indices, mask_prob=1.0, generator=g)
        for row, (idx, m, lab) in enumerate(zip(indices, mask, labels)):
            if (idx < 0).all():  # a pair without a valid token masks nothing
                assert not m.any() and (lab == -100).all()
                continue
            chosen = idx[m].unique()
            assert len(chosen) == 1 and int(chosen) >= 0  # one entry, among the entries the row uses
            assert torch.equal(m, idx == chosen)  # every token of that entry, and only those
            assert torch.equal(lab, torch.where(m, idx, torch.full_like(idx, -100)))
            seen[row].add(int(chosen))
    assert seen[0] == {1, 2, 3} and seen[1] == {0, 5} and seen[3] == {7}
    mask, labels = sample_mvm_mask(indices, mask_prob=0.0, generator=g)
    assert not mask.any() and (labels == -100).all()
    # the code's probability: a pair is masked with p = mask_prob
    many = torch.zeros(4000, 6, dtype=torch.long)
    frac = sample_mvm_mask(many, mask_prob=0.25, generator=g)[0].any(dim=1).float().mean()
    assert 0.2 < float(frac) < 0.3


def test_neck_puts_the_mask_embedding_on_the_masked_tokens_only():
    model = _model().eval()
    inputs, samples = _batch(2, 128)
    visual = model.extract_visual(inputs, samples)
    n = visual['embedded'].shape[1]
    assert n == 16 and visual['indices'].shape == (2, 16) and (visual['indices'] >= 0).all()
    mask = torch.zeros(2, n, dtype=torch.bool)
    mask[0, [1, 5]] = True
    tokens = model.neck.tokens(visual['embedded'], visual['pos'], mask)
    plain = model.neck.tokens(visual['embedded'], visual['pos'])
    assert torch.allclose(tokens[~mask], plain[~mask])
    expected = model.neck.norm(model.neck.mask_embedding + visual['pos'][0, [1, 5]])
    assert torch.allclose(tokens[0, [1, 5]], expected, atol=1e-6)


# ------------------------------------------------------------------------------------------------ ITM
@pytest.mark.parametrize('rule', ['binomial', 'exact'])
def test_itm_negatives_are_never_positives(rule):
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4])
    negatives = 0
    for _ in range(50):
        text_index, labels = sample_itm_texts(ids, 4, rule, generator=g)
        img = ids.repeat_interleave(4)
        assert text_index.shape == labels.shape == (32,)
        assert (ids[text_index][labels == 0] != img[labels == 0]).all()  # a negative shows another image
        assert (ids[text_index][labels == 1] == img[labels == 1]).all()  # a positive is a caption of the image
        per_image = (labels == 0).view(8, 4).sum(dim=1)
        if rule == 'exact':
            assert (per_image == 2).all()
        negatives += int(per_image.sum())
    assert 0.4 < negatives / (50 * 32) < 0.6
    # one image only: no caption of another image, every slot stays positive
    text_index, labels = sample_itm_texts(torch.tensor([5, 5, 5]), 4, rule, generator=g)
    assert (labels == 1).all()
    with pytest.raises(ValueError, match='rule'):
        sample_itm_texts(ids, rule='hard')


# ----------------------------------------------------------------------------------------- the model
def test_pretraining_losses_gradients_and_dictionary_update():
    model = _model(mvm_cfg=dict(mask_prob=1.0)).train()
    assert model.mlm_head.decoder.weight is model.language_model.word_embeddings.weight
    assert 'neck.dictionary.embed' in model.state_dict()
    before = model.neck.dictionary.embed.clone()
    inputs, samples = _batch(4, 128)
    losses = model.loss(inputs, samples)
    for key in ('loss_mlm', 'loss_mvm', 'loss_itm', 'acc_mlm', 'acc_mvm', 'acc_itm', 'dict_used',
                'dict_perplexity', 'mvm_tokens'):
        assert key in losses and torch.isfinite(losses[key]).all(), key
    assert {k for k in losses if 'loss' in k} == {'loss_mlm', 'loss_mvm', 'loss_itm'}
    assert losses['mvm_tokens'] >= 16  # every pair masks at p = 1: at least one token each
    assert 1 <= losses['dict_used'] <= 16 * 4 and losses['dict_perplexity'] <= losses['dict_used'] + 1e-4
    assert not torch.equal(model.neck.dictionary.embed, before)  # updated in training
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    # the straight-through gradient reaches the backbone's trainable stages through the dictionary
    assert model.backbone.layer4[0].downsample[0].weight.grad.abs().sum() > 0  # (norm2 starts at 0: zero_init)
    assert model.backbone.layer1[0].conv1.weight.grad is None  # frozen_stages=1
    assert model.neck.mask_embedding.grad.abs().sum() > 0 and model.neck.gate.conv.weight.grad is not None
    model.eval()
    after = model.neck.dictionary.embed.clone()
    fused = model(inputs, samples, mode='tensor')
    assert fused.shape[1] == model.tokenize([s.text for s in samples])['input_ids'].shape[1] + 16
    assert torch.equal(model.neck.dictionary.embed, after)  # no update in eval
    preds = model(inputs, samples, mode='predict')
    assert all(0 <= float(p.pred_score) <= 1 for p in preds)


def test_mlm_mvm_on_positives_only():
    model = _model(mvm_cfg=dict(mask_prob=1.0), mlm_mvm_on_negatives=False,
                   itm_cfg=dict(rule='exact', num_negatives=4)).train()
    inputs, samples = _batch(4, 128)
    losses = model.loss(inputs, samples)
    # every slot is a negative: nothing left for MLM and MVM, their losses are zero (the graph is kept)
    assert float(losses['loss_mlm']) == 0.0 and float(losses['loss_mvm']) == 0.0
    assert float(losses['mvm_tokens']) == 0.0 and losses['loss_itm'] > 0
    # two negatives of four: MLM and MVM targets, and masked inputs, on the positives only
    model.itm_cfg['num_negatives'] = 2
    seen = {}
    import mmvlg.models.multimodal.soho.soho as soho_module
    real_itm, real_fuse = soho_module.sample_itm_texts, model.fuse

    def itm(*args, **kwargs):
        seen['itm'] = real_itm(*args, **kwargs)
        return seen['itm']

    def fuse(input_ids, attention_mask, tokens, valid):
        seen['ids'] = input_ids
        return real_fuse(input_ids, attention_mask, tokens, valid)

    def recording(name, f):
        def wrapped(feats, labels):
            seen[name] = labels
            return f(feats, labels)
        return wrapped

    model.mlm_head.loss = recording('mlm', model.mlm_head.loss)
    model.mvm_loss = recording('mvm', model.mvm_loss)
    model.fuse = fuse
    soho_module.sample_itm_texts = itm
    try:
        model.loss(inputs, samples)
    finally:
        soho_module.sample_itm_texts = real_itm
    neg = seen['itm'][1] == 0
    assert int(neg.sum()) == 8
    assert (seen['mlm'][neg] == -100).all() and (seen['mlm'][~neg] != -100).any(dim=1).all()
    assert (seen['mvm'][neg] == -100).all() and (seen['mvm'][~neg] >= 0).any(dim=1).all()
    mask_id = model.tokenizer.mask_token_id
    assert not (seen['ids'][neg] == mask_id).any()


def test_neck_fusions():
    model = _model(neck=dict(type='SOHONeck', in_channels=128, fusion='none', project_entries=False,
                             dictionary=dict(type='VisualDictionary', num_entries=8))).eval()
    inputs, samples = _batch(2, 128)
    visual = model.extract_visual(inputs, samples)
    entries = model.neck.dictionary.embed[visual['indices']]
    assert torch.allclose(visual['embedded'], entries, atol=1e-5)  # the paper: the dictionary embedding
    plain = model.extract_visual(inputs, samples, use_dictionary=False)
    assert torch.equal(plain['embedded'], plain['features']) and 'indices' not in plain
    with pytest.raises(ValueError, match='fusion'):
        MODELS.build(dict(type='SOHONeck', in_channels=8, out_channels=8, fusion='concat'))


def test_image_without_caption_is_named():
    model = _model()
    inputs, samples = _batch(3, 64, ids=[10, 11, 12])
    samples[1].set_metainfo(dict(text='  '))
    with pytest.raises(ValueError, match='11'):
        model.loss(inputs, samples)


def test_retrieval_scores_every_pair_by_itm():
    model = _model().eval()
    inputs, samples = _batch(3, 128)
    img, txt = model.encode_batch(inputs, samples)
    from mmvlg.models.multimodal.retrieval import split_cached
    i2t, t2i = model.rank_gallery(split_cached(img), split_cached(txt))
    assert i2t.shape == (3, 3) and torch.equal(i2t, t2i)
    for i in range(3):  # pair (image i, text j) scored directly
        for j in range(3):
            pair = [DetDataSample(metainfo=dict(samples[j].metainfo, img_shape=(128, 128)))]
            logits = model.itm_head(model(inputs[i:i + 1], pair, mode='tensor')[:, 0])
            assert torch.allclose(i2t[i, j], logits[0, 1] - logits[0, 0], atol=1e-4)


# --------------------------------------------------------------------------------- the tiny config
def _tiny_data(cfg, tmp_path):
    generate = dict(num_scenes=dict(train=8, val=3), image_size=32, phrasings=['list', 'count'], seed=0)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=4, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.update(data_root=str(tmp_path / 'caps'), generate=generate)


@pytest.mark.filterwarnings('ignore')
def test_tiny_config_trains_a_few_iterations(tmp_path):
    from mmengine.runner import Runner
    cfg = _cfg()
    assert cfg.caption_vocab == caption_vocabulary()
    assert cfg.model.neck.dictionary.num_entries == 64 and cfg.train_cfg.max_iters == 2000
    _tiny_data(cfg, tmp_path)
    cfg.train_cfg.update(max_iters=3, val_interval=3)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3)]
    cfg.default_hooks.checkpoint.interval = 3
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = 'soho_tiny'
    runner = Runner.from_cfg(cfg)
    before = runner.model.neck.dictionary.embed.clone()
    text_before = runner.model.language_model.word_embeddings.weight.detach().clone()
    runner.train()
    scalars = runner.message_hub.log_scalars
    for key in ('train/loss_mlm', 'train/loss_mvm', 'train/loss_itm', 'train/acc_itm', 'train/dict_used',
                'train/dict_perplexity', 'val/retrieval/text_R@1', 'val/retrieval/image_R@5',
                'val/retrieval/R_mean'):
        assert key in scalars, key
    assert 0 <= scalars['val/retrieval/R_mean'].current() <= 100
    assert not torch.equal(runner.model.neck.dictionary.embed, before)
    assert not torch.equal(runner.model.language_model.word_embeddings.weight, text_before)
    ckpt = torch.load(osp.join(cfg.work_dir, 'iter_3.pth'), map_location='cpu', weights_only=True)
    assert torch.equal(ckpt['state_dict']['neck.dictionary.embed'], runner.model.neck.dictionary.embed)


@pytest.mark.filterwarnings('ignore')
def test_paper_optimizers_through_the_runner(tmp_path):
    """The paper's optimization: SGD for the backbone and AdamW for the rest, one OptimWrapperDict
    (ModuleOptimWrapperConstructor); both step in SOHO.train_step, the schedulers drive both."""
    from mmengine.optim import OptimWrapperDict
    from mmengine.runner import Runner
    cfg = _cfg()
    _tiny_data(cfg, tmp_path)
    cfg.train_cfg.update(max_iters=2, val_interval=100)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2)]
    cfg.optim_wrapper = dict(
        constructor='ModuleOptimWrapperConstructor',
        backbone=dict(modules=['backbone'], type='OptimWrapper',
                      optimizer=dict(type='SGD', lr=1e-2, momentum=0.9, weight_decay=1e-4),
                      clip_grad=dict(max_norm=10.0)),
        others=dict(modules=None, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.01),
                    clip_grad=dict(max_norm=10.0),
                    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0)))
    cfg.default_hooks.checkpoint.interval = 2
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    model = runner.model
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    runner.train()
    assert isinstance(runner.optim_wrapper, OptimWrapperDict)
    assert isinstance(runner.optim_wrapper['backbone'].optimizer, torch.optim.SGD)
    assert isinstance(runner.optim_wrapper['others'].optimizer, torch.optim.AdamW)
    changed = {n for n, p in model.named_parameters() if n in before and not torch.equal(p, before[n])}
    assert any(n.startswith('backbone.') for n in changed) and any(n.startswith('language_model.') for n in changed)
    assert runner.optim_wrapper['backbone'].get_lr()['lr'][0] == pytest.approx(1e-2)  # end of the LinearLR ramp
