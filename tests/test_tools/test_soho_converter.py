"""Tests of tools/model_converters/soho_to_mmvlg.py: the authors' SOHO checkpoints in mmvlg, with outputs equal to
those of the authors' code.

How the data in ``tests/data/soho_converter/`` was produced: ``make_authors_data.py`` there (its docstring has the
commands), run once against the authors' code (researchmm/soho at commit 95824a8, ``git archive`` of ``SOHO/`` and
``commons/``, their vendored mmcv 1.x) in a scratch folder outside the repository, on CPU with torch 2.13. Patches:
their setup.py-generated ``SOHO/version.py`` written by hand and an empty ``apex`` module (imported by their
runner, unused by the models); the necks' ``SyncBN`` replaced by ``BN`` in the config dicts (same keys; SyncBN needs
a process group). Nothing else; no file of theirs is in this repository.

* ``soho-pre_tiny_authors.pth``: their ``SOHOSingleStreamPre`` (``SimpleVDforPreGate`` neck, ``VLBertModel``,
  ``MLM_MVM_ITM_head``) built by their builder from ``configs/Pretrain/soho_res18_pre.py``'s dicts with only the
  sizes reduced (ResNet-18 of stem and base width 4, layer4 at stride 1; 16-wide, 3-layer BERT of 2 heads over
  the 31-token vocabulary of ``tiny_sizes.py``; 32 dictionary entries; ``mask_prob`` 1 so that the chosen entry
  is always masked); ``soho-vqa_tiny_authors.pth``: their ``SOHOSingleStreamVQA`` (``SimpleVDforVQA``,
  ``SOHO_DownStream_VQA_head`` of 7 answers), the same sizes. Every tensor of the state dicts drawn again from
  ``torch.Generator().manual_seed(0)`` / ``(1)``: LayerNorm and BatchNorm weights 1 + N(0, 0.2), biases N(0, 0.1),
  BatchNorm running means N(0, 0.1), variances U(0.5, 1.5), counters random, Linear/Conv weights
  N(0, 1 / sqrt(fan_in)), embeddings and the mask embedding N(0, 1), the dictionary's entries and sums N(0, 1), its
  counts U(0, 10) (``mask_l_fc.weight`` stays the word-embedding matrix, as their model ties it). Saved as their
  runner's ``save_checkpoint`` does, ``{'meta': ..., 'state_dict': ...}``.
* ``expected_outputs.pth``: ``inputs``: two 128 x 128 images (``image_codes``, int8; the normalized images are
  ``codes / 32``), the second one 96 x 80 inside the batch (``img_shapes``; zeros outside, as their ``Pad``), four
  captions tokenized by mmvlg's word tokenizer (padded to the longest), the same with one word each replaced by
  ``[MASK]`` (``mlm_input_ids``), the image of each caption (``pair_image`` 0, 0, 1, 1: their ``forward_train``
  repeats each image's features per caption), two questions. In eval mode without gradients, following
  ``forward_train``: ``pre``: the neck's dictionary inputs and the nearest entries of each token
  (``dict_inputs``, ``indices``, from a hook on ``vq``), the neck's outputs (``visual_tokens``, ``visual_mask``,
  ``mvm_labels``: ``np.random.seed(1)`` chose the token position whose entry is masked), the fused tokens of
  ``VLBertModel`` over the masked captions and visual tokens (``fused``), the MLM logits ``mask_l_fc(fused)`` at
  the text positions, the MVM scores (cosine of the visual positions to ``vq.embed``) and the ITM logits
  ``head(fused)``; ``vqa``: the neck's tokens, the fused tokens of each question with its image and the VQA logits.
  The smallest gap between the two nearest squared distances of a token was 4.1e-3 (no lookup is a near tie).
* ``released_keys.json``: the key -> shape lists of both models built at the released sizes (ResNet-18, 768-wide
  3-layer BERT-base, 2048 entries, 3129 answers), for the release config's test.

The largest difference between mmvlg's outputs and these was 5.7e-6 (fp32; the MLM logits; fused tokens 1.4e-6, ITM
logits 7.2e-7, VQA logits 3.6e-7, MVM scores 2.9e-7, the dictionary inputs and visual tokens equal); the tests
allow 1e-4; the lookups are equal. The two codes differ only where the outputs are not used: at the visual
padding positions their neck gates the dictionary entry of the padding features, mmvlg the features themselves
(those tokens are masked out of every attention, so only the padding positions' own outputs differ: they are
compared at the valid positions), and their dictionary looks up every token of every (image, text) copy, mmvlg
the valid tokens of each image once. In training, their dictionary also returns the entries after that step's
update, mmvlg the entries before it.
"""
import json
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

register_all_modules()

DATA = osp.join(REPO_ROOT, 'tests', 'data', 'soho_converter')
RELEASE_CONFIGS = dict(
    pre=osp.join(REPO_ROOT, 'configs', 'soho', 'soho-release_r18_bert-base-3l_8xb16-40e_coco-vg.py'),
    vqa=osp.join(REPO_ROOT, 'configs', 'soho', 'soho-release-vqa_r18_bert-base-3l_8xb32-20e_vqav2.py'))
KINDS = dict(pre='pretrain', vqa='vqa')
TOL = 1e-4


def load_tool():
    import importlib.util
    path = osp.join(REPO_ROOT, 'tools', 'model_converters', 'soho_to_mmvlg.py')
    spec = importlib.util.spec_from_file_location('_mmvlg_soho_to_mmvlg', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def authors_checkpoint(kind: str) -> str:
    return osp.join(DATA, f'soho-{kind}_tiny_authors.pth')


def config_path(kind: str) -> str:
    return osp.join(DATA, f'soho-{kind}_tiny.py')


def build_model(kind: str) -> torch.nn.Module:
    return MODELS.build(Config.fromfile(config_path(kind)).model)


def read_authors(kind: str) -> dict:
    return torch.load(authors_checkpoint(kind), map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def expected():
    return torch.load(osp.join(DATA, 'expected_outputs.pth'), map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """Both tiny checkpoints converted once through the command line, and the models loaded from them."""
    out = {}
    for kind in KINDS:
        dst = str(tmp_path_factory.mktemp(kind) / 'converted.pth')
        assert tool.main([authors_checkpoint(kind), dst, '--config', config_path(kind)]) == 0
        model = build_model(kind)
        load_checkpoint(model, dst, map_location='cpu', strict=True)  # what load_from and tools/test.py do
        out[kind] = (dst, model.eval())
    return out


def close(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = float((got - want).abs().max())
    assert diff <= TOL, diff
    return diff


def samples(inp, texts=None):
    texts = texts or [None] * len(inp['img_shapes'])
    return [DetDataSample(metainfo=dict(img_shape=tuple(int(s) for s in shape), text=t))
            for shape, t in zip(inp['img_shapes'], texts)]


def images(inp) -> torch.Tensor:
    return inp['image_codes'].float() / 32


def test_pretrain_outputs_match_the_authors_code(converted, expected):
    """Dictionary inputs and lookups, the MVM mask of the chosen entry, visual tokens, fused tokens, MLM logits,
    MVM scores and ITM logits."""
    _, model = converted['pre']
    want, inp = expected['pre'], expected['inputs']
    pair = inp['pair_image']
    with torch.no_grad():
        tok = model.tokenize(list(inp['texts']))
        assert torch.equal(tok['input_ids'], inp['input_ids'])
        assert torch.equal(tok['attention_mask'], inp['attention_mask'])
        visual = model.extract_visual(images(inp), samples(inp))
        valid = visual['valid'][pair]
        assert torch.equal(valid.long(), want['visual_mask'])
        assert valid.sum() < valid.numel()  # image 1 has padding
        close(visual['features'][pair], want['dict_inputs'])
        indices = visual['indices'][pair]
        assert torch.equal(indices[valid], want['indices'][valid])  # the same nearest entries
        assert (indices[~valid] == -1).all()
        assert torch.equal(model.neck.dictionary.lookup(want['dict_inputs'].flatten(0, 1)), want['indices'].flatten())
        # MVM: their neck masked every valid token of the entry at one position; mmvlg's rule masks the same set
        mask = want['mvm_labels'] >= 0
        assert mask.any(dim=1).all()
        chosen = want['mvm_labels'].max(dim=1).values
        assert torch.equal(mask, valid & (indices == chosen[:, None]))
        assert torch.equal(want['mvm_labels'][mask], indices[mask])
        tokens = model.neck.tokens(visual['embedded'][pair], visual['pos'][pair], mask)
        close(tokens[valid], want['visual_tokens'][valid])
        length = inp['mlm_input_ids'].shape[1]
        fused = model.fuse(inp['mlm_input_ids'], tok['attention_mask'], tokens, valid)
        close(fused[:, :length], want['fused'][:, :length])
        close(fused[:, length:][valid], want['fused'][:, length:][valid])
        close(model.mlm_head(fused[:, :length]), want['mlm_logits'])
        close(model.neck.dictionary.cosine_logits(fused[:, length:])[valid], want['mvm_scores'][valid])
        close(model.itm_head(fused[:, 0]), want['itm_logits'])
        # the model's own MVM loss over those targets is the cross entropy of the authors' scores
        labels = want['mvm_labels'].masked_fill(~mask, -100)
        mvm = model.mvm_loss(fused[:, length:], labels)
        ref = torch.nn.functional.cross_entropy(want['mvm_scores'][mask], want['mvm_labels'][mask])
        close(mvm['loss_mvm'], ref)
        # predict: the ITM match probability of each image with its own text (pairs 0 and 2)
        out = model.predict(images(inp), samples(inp, [inp['texts'][0], inp['texts'][2]]))
        unmasked = model.fuse(tok['input_ids'][[0, 2]], tok['attention_mask'][[0, 2]],
                              model.neck.tokens(visual['embedded'], visual['pos']), visual['valid'])
        probs = model.itm_head(unmasked[:, 0]).softmax(-1)[:, 1]
        close(torch.stack([ds.pred_score for ds in out]), probs)


def test_vqa_outputs_match_the_authors_code(converted, expected):
    """The VQA neck's tokens (no dictionary), the fused tokens and the answer logits, also through ``predict``."""
    _, model = converted['vqa']
    want, inp = expected['vqa'], expected['inputs']
    with torch.no_grad():
        tok = model.tokenize(list(inp['questions']))
        assert torch.equal(tok['input_ids'], inp['question_input_ids'])
        visual = model.encode_images(images(inp), samples(inp))
        assert torch.equal(visual['valid'].long(), want['visual_mask'])
        close(visual['tokens'], want['visual_tokens'])  # every position: the same tokens at the padding too
        fused = model.fuse(tok['input_ids'], tok['attention_mask'], visual['tokens'], visual['valid'])
        length = tok['input_ids'].shape[1]
        close(fused[:, :length], want['fused'][:, :length])
        close(fused[:, length:][visual['valid']], want['fused'][:, length:][visual['valid']])
        close(model._forward(images(inp), samples(inp, inp['questions'])), want['logits'])
        out = model.predict(images(inp), samples(inp, inp['questions']))
        best = want['logits'].argmax(dim=1)
        assert [ds.pred_answer for ds in out] == [model.vqa_head.answers[int(i)] for i in best]


@pytest.mark.parametrize('kind', list(KINDS))
def test_every_key_is_mapped_or_dropped_with_a_reason(kind, converted):
    dst, _ = converted[kind]
    checkpoint = torch.load(dst, map_location='cpu', weights_only=True)
    result = build_model(kind).load_state_dict(checkpoint['state_dict'], strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    meta = checkpoint['meta']
    assert meta['task'] == KINDS[kind] and meta['weights'] == 'state_dict' and meta['added_keys'] == []
    source = read_authors(kind)['state_dict']
    task, mapped, _, unmapped = tool.map_state(source)
    assert task == KINDS[kind] and unmapped == []
    used = {src for new, (src, _) in mapped.items() if new in checkpoint['state_dict']}
    dropped = {d.split(':')[0] for d in meta['dropped_keys']}
    assert not used & dropped and used | dropped == set(source)
    kept = {k.split(':')[0] for k in meta['kept_keys']}
    if kind == 'pre':
        assert dropped == {'neck.vq.cluster_sum'} and kept == set()
        assert mapped['mlm_head.decoder.weight'][0] == 'mask_l_fc.weight'
        assert mapped['neck.gate.bn.running_var'][0] == 'neck.gate_fc.bn.running_var'
        assert mapped['neck.dictionary.embed_avg'][0] == 'neck.vq.embed_avg'
        assert torch.equal(checkpoint['state_dict']['neck.mask_embedding'], source['neck.mask_emb.weight'][0])
    else:
        assert dropped == set() and kept == {'neck.mask_embedding'}
        assert mapped['vqa_head.classifier.3.weight'][0] == 'head.vqa.3.weight'
    # the BatchNorm statistics and counters come from the checkpoint (their runner keeps them)
    assert torch.equal(checkpoint['state_dict']['backbone.layer4.1.bn2.running_var'],
                       source['backbone.layer4.1.bn2.running_var'])
    assert torch.equal(checkpoint['state_dict']['neck.proj.bn.num_batches_tracked'],
                       source['neck.conv.bn.num_batches_tracked'])


def released_forward(model, inp, want) -> dict:
    """The valid visual tokens and the MLM, MVM and ITM outputs of the test's pairs, with the authors' MVM mask."""
    pair = inp['pair_image']
    visual = model.extract_visual(images(inp), samples(inp))
    valid = visual['valid'][pair]
    tokens = model.neck.tokens(visual['embedded'][pair], visual['pos'][pair], want['mvm_labels'] >= 0)
    length = inp['mlm_input_ids'].shape[1]
    fused = model.fuse(inp['mlm_input_ids'], inp['attention_mask'], tokens, valid)
    return dict(visual_tokens=tokens[valid], mlm_logits=model.mlm_head(fused[:, :length]),
                mvm_scores=model.neck.dictionary.cosine_logits(fused[:, length:])[valid],
                itm_logits=model.itm_head(fused[:, 0]))


@pytest.mark.parametrize('swap', [('neck.gate_fc.bn.weight', 'neck.gate_fc.bn.bias'),
                                  ('neck.conv.bn.running_mean', 'neck.conv.bn.bias'),
                                  ('language.bert.encoder.layer.0.attention.self.query.weight',
                                   'language.bert.encoder.layer.1.attention.self.query.weight')])
def test_a_swapped_mapping_changes_the_outputs(swap, tmp_path, expected):
    """The comparison is not blind to a wrong rule: two tensors of the same shape swapped in the checkpoint (a
    norm's weight and bias, a BatchNorm statistic and a bias, two layers) give other outputs."""
    inp, want = expected['inputs'], expected['pre']
    state = dict(read_authors('pre')['state_dict'])
    a, b = swap
    state[a], state[b] = state[b], state[a]
    src = str(tmp_path / 'swapped.pth')
    torch.save(dict(meta={}, state_dict=state), src)
    model = build_model('pre')
    tool.convert_checkpoint(src, str(tmp_path / 'out.pth'), model, log=lambda _: None)
    with torch.no_grad():
        got = released_forward(model.eval(), inp, want)
    valid = want['visual_mask'].bool()
    ref = dict(visual_tokens=want['visual_tokens'][valid], mlm_logits=want['mlm_logits'],
               mvm_scores=want['mvm_scores'][valid], itm_logits=want['itm_logits'])
    assert all(torch.isfinite(v).all() for v in got.values())
    assert max(float((got[k] - ref[k]).abs().max()) for k in ('mlm_logits', 'itm_logits')) > 1e-2
    if a.startswith('neck.'):
        assert float((got['visual_tokens'] - ref['visual_tokens']).abs().max()) > 1e-2


def test_tied_mlm_decoder_must_be_the_word_embeddings(tmp_path):
    state = dict(read_authors('pre')['state_dict'])
    state['mask_l_fc.weight'] = state['mask_l_fc.weight'] + 1
    src = str(tmp_path / 'untied.pth')
    torch.save(dict(meta={}, state_dict=state), src)
    with pytest.raises(tool.ConversionError, match=r'mask_l_fc\.weight -> mlm_head\.decoder\.weight.*tied'):
        tool.convert_checkpoint(src, str(tmp_path / 'out.pth'), build_model('pre'))


def test_unknown_keys_and_wrong_configs_are_errors(tmp_path):
    state = dict(read_authors('pre')['state_dict'])
    state['neck.begin_line.weight'] = torch.zeros(16, 16)  # their begin_align option: no mmvlg counterpart
    src = str(tmp_path / 'extra.pth')
    torch.save(dict(meta={}, state_dict=state), src)
    with pytest.raises(tool.ConversionError, match=r'without a counterpart in mmvlg:\n  neck\.begin_line\.weight'):
        tool.convert_checkpoint(src, str(tmp_path / 'out.pth'), build_model('pre'))
    # the pre-training checkpoint into the VQA model: the dictionary and heads are unexpected, the VQA head missing
    with pytest.raises(tool.ConversionError) as err:
        tool.convert_checkpoint(authors_checkpoint('pre'), str(tmp_path / 'out.pth'), build_model('vqa'))
    message = str(err.value)
    assert 'neck.vq.embed -> neck.dictionary.embed' in message and 'vqa_head.classifier.0.weight' in message
    # a model of another width: shape mismatches named
    cfg = Config.fromfile(config_path('pre'))
    cfg.model.neck.dictionary.num_entries = 16
    with pytest.raises(tool.ConversionError, match=r'neck\.vq\.embed -> neck\.dictionary\.embed: checkpoint '
                                                   r'\(32, 16\), model \(16, 16\)'):
        tool.convert_checkpoint(authors_checkpoint('pre'), str(tmp_path / 'out.pth'), MODELS.build(cfg.model))
    with pytest.raises(tool.ConversionError, match='cannot tell which SOHO model'):
        tool.detect_task(['backbone.conv1.weight'])


def test_bare_state_dict_and_module_prefix(tmp_path):
    state = read_authors('vqa')['state_dict']
    src = str(tmp_path / 'bare.pth')
    torch.save({f'module.{k}': v for k, v in state.items()}, src)
    loaded, entry = tool.load_authors_checkpoint(src)
    assert entry == '(state dict)' and list(loaded) == list(state)
    out = tool.convert_checkpoint(src, str(tmp_path / 'out.pth'), build_model('vqa'), log=lambda _: None)
    assert out['meta']['task'] == 'vqa'


def _release_model(kind: str):
    """The release config's model at its real sizes, offline: bert-base-uncased's sizes from a local config
    (vocabulary 30522, 512 positions) with a word tokenizer of as many tokens; for VQA 3129 answers."""
    cfg = Config.fromfile(RELEASE_CONFIGS[kind])
    model = cfg.model
    model.language_model = dict(
        type='HFTextEncoder', max_length=16, tokenizer=dict(type='word', vocab=[f'w{i}' for i in range(30522 - 5)]),
        model_config=dict(model_type='bert', hidden_size=768, num_hidden_layers=3, num_attention_heads=12,
                          intermediate_size=3072, max_position_embeddings=512))
    model.backbone.init_cfg = None
    model.neck.norm_cfg = dict(type='BN')  # SyncBN: the same keys
    if kind == 'vqa':
        model.vqa_head.answers = [f'a{i}' for i in range(3129)]
    return MODELS.build(model)


@pytest.mark.parametrize('kind', list(KINDS))
def test_release_config_takes_the_released_checkpoints(kind):
    """The release configs' models at the released sizes have exactly the tensors of the authors' released models
    (``released_keys.json``): every key mapped, none missing, the shapes equal."""
    with open(osp.join(DATA, 'released_keys.json')) as f:
        shapes = json.load(f)[KINDS[kind]]
    generator = torch.Generator().manual_seed(0)
    state = {k: (torch.zeros(s, dtype=torch.long) if k.endswith('num_batches_tracked') else torch.empty(s))
             for k, s in shapes.items()}
    for v in state.values():
        if v.is_floating_point():
            v.normal_(generator=generator)
    assert ('mask_l_fc.weight' in state) == (kind == 'pre')
    if kind == 'pre':  # one tensor in their model
        state['mask_l_fc.weight'] = state['language.bert.embeddings.word_embeddings.weight']
    model = _release_model(kind)
    converted, dropped, added, task, kept = tool.convert_state_dict(state, model.state_dict())
    assert task == KINDS[kind] and added == []
    result = model.load_state_dict(converted, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert [k for k, _ in dropped] == (['neck.vq.cluster_sum'] if kind == 'pre' else [])
    assert [k for k, _ in kept] == ([] if kind == 'pre' else ['neck.mask_embedding'])


def test_release_config_settings():
    """The released training settings (configs/Pretrain/soho_res18_pre.py) as read into the config."""
    cfg = Config.fromfile(RELEASE_CONFIGS['pre'])
    m = cfg.model
    assert m.mlm_head.transform is False and m.mlm_head.bias is False and m.itm_head.bias is False
    assert m.neck.dictionary.num_entries == 2048 and m.neck.dictionary.momentum == 0.4 and m.neck.fusion == 'gate'
    assert m.language_model.model_kwargs.num_hidden_layers == 3 and m.language_model.max_length == 16
    assert m.itm_cfg.rule == 'binomial' and m.mlm_mvm_on_negatives and m.mvm_cfg.mask_prob == 0.015
    assert cfg.train_dataloader.batch_size == 16 and cfg.auto_scale_lr.base_batch_size == 8 * 16
    ow = cfg.optim_wrapper
    assert ow.backbone.optimizer.lr == 1e-2 and ow.others.optimizer.lr == 1e-4
    assert ow.backbone.accumulative_counts == 2 and ow.others.clip_grad.max_norm == 10.0
    assert [s.get('milestones') for s in cfg.param_scheduler] == [None, [25, 35]]
    assert not any(h.type == 'FreezeModulesHook' for h in cfg.get('custom_hooks', []))
    vqa = Config.fromfile(RELEASE_CONFIGS['vqa'])
    assert vqa.model.type == 'SOHOVQA' and vqa.model.neck.dictionary is None and vqa.model.vqa_head.dropout == 0.5
    assert vqa.train_dataloader.batch_size == 32 and vqa.auto_scale_lr.base_batch_size == 8 * 32
    assert vqa.optim_wrapper.others.clip_grad.max_norm == 4.0 and vqa.train_cfg.max_epochs == 20
    assert [s.get('milestones') for s in vqa.param_scheduler] == [None, [12, 16]]


def test_head_options_of_the_released_layout():
    """MLMHead(transform=False, bias=False): logits = tokens @ W^T, no dense/norm/bias tensors; ITMHead(bias=False):
    a bias-free Linear; the defaults keep their tensors (the other models' checkpoints)."""
    from mmvlg.models.heads import ITMHead, MLMHead
    assert sorted(MLMHead(8, 11).state_dict()) == ['bias', 'decoder.weight', 'dense.bias', 'dense.weight',
                                                   'norm.bias', 'norm.weight']
    plain = MLMHead(8, 11, transform=False, bias=False)
    assert list(plain.state_dict()) == ['decoder.weight']
    x = torch.randn(2, 3, 8)
    close(plain(x), x @ plain.decoder.weight.t())
    with_bias = MLMHead(8, 11, transform=False)
    assert sorted(with_bias.state_dict()) == ['bias', 'decoder.weight']
    labels = torch.full((2, 3), -100)
    labels[0, 1] = 4
    assert plain.loss(x, labels)['loss_mlm'] > 0
    with pytest.raises(ValueError, match='without the transform or the bias'):
        plain.load_hf_prediction_head('bert-base-uncased')
    assert sorted(ITMHead(8).state_dict()) == ['fc.bias', 'fc.weight']
    assert list(ITMHead(8, bias=False).state_dict()) == ['fc.weight']
    with pytest.raises(ValueError, match='bias=False applies to the one-Linear classifier'):
        ITMHead(8, hidden_dims=16, bias=False)
