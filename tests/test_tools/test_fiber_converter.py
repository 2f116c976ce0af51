"""Tests of tools/model_converters/fiber_to_mmvlg.py: the authors' coarse-grained (PyTorch Lightning) and
fine-grained (maskrcnn_benchmark) FIBER checkpoints in mmvlg, with outputs identical to the authors' code.

How the data in ``tests/data/fiber_converter/`` was produced. The authors' code is not part of this repository
and no script that imports or runs it is committed; it was run once, in a scratch folder outside the repository:

* Code: microsoft/FIBER at commit ca0f36bd7e1ad0ac02af2550042b1f259adaf5f9 (``git archive``), on CPU with torch
  2.13.0, torchvision 0.28.0, timm 0.4.12 (the version of their requirements), transformers 4.30.2, yacs 0.1.8.

Coarse-grained (``coarse_grained/fiber/modules``: ``FIBERTransformerSS`` of ``fiber_module.py`` with its
``swin_transformer.py``, ``roberta.py`` and ``heads.py``). Patched only where today's libraries break them or for
the reduced sizes:

* Patches: ``add_code_sample_docstrings`` (a docstring decorator whose arguments changed after transformers
  4.6) made a no-op in ``roberta.py``; ``pytorch_lightning`` replaced by a stub whose ``LightningModule`` is an
  ``nn.Module`` with ``save_hyperparameters()`` (``fiber_utils.set_metrics``, the Lightning metrics, made a no-op);
  ``RobertaModel.from_pretrained`` replaced by ``RobertaModel(RobertaConfig)`` of ``tiny-roberta/config.json``;
  ``swin_transformer.DIM_TEXT`` (the literal 768, the text width of the Swin's image-to-text attention) set to 16
  (the authors' module sets an unused ``DIM_TXT``).
* Models: ``FIBERTransformerSS(config)`` in eval mode, with the defaults of their ``config.py`` except the
  sizes: a Swin registered as a timm model with Swin-B's depths (2, 2, 18, 2) but widths 4-32 and heads
  (1, 1, 2, 2) (their Swin sets its window to ``image_size / 32``), a 12-layer, 16-wide RoBERTa (2 heads, the
  300-token BPE tokenizer of ``tests/data/mdetr_converter/tiny-roberta``, copied to ``tiny-roberta/`` with its
  own ``config.json``), ``num_fuse_block`` 6, ``hidden_size`` 24, ``input_image_embed_size`` 32,
  ``input_text_embed_size`` 16, ``vocab_size`` 300, ``max_text_len`` 40:

  - ``fiber-pretrain_tiny_authors.ckpt``: ``task_pretrain_mlm_itm_itc`` (``loss_names`` itm, mlm, itc: ITC
    projections/poolers, temperature, ALBEF queues, ITM head with ``rank_output``, MLM head) at
    ``image_size`` 96 (window 3); the released ``fiber_pretrain.ckpt`` is this at 384 (window 12);
  - ``fiber-vqa_tiny_authors.ckpt``: ``task_finetune_vqa`` (``loss_names`` vqa, ``vqav2_label_size`` 7) at
    ``image_size`` 128 (window 4); the released ``fiber_vqa.ckpt`` is this at 576 (window 18).
* Weights: every tensor drawn at random with fixed seeds (the gates ``alpha_i2t``/``alpha_t2i`` in [0.5, 1.5] so
  that the fusion matters, LayerNorm weights 1 + N(0, 0.2), biases N(0, 0.1), relative-position tables N(0, 1),
  weights N(0, 1 / fan_in), temperature 0.05); the 4096-entry ALBEF queues (``image_input_queue`` alone would
  be 4096 images) shrunk to 2 entries. Saved as PyTorch Lightning 1.3 saves them:
  ``{'epoch', 'global_step', 'pytorch-lightning_version', 'state_dict', 'callbacks', 'optimizer_states',
  'lr_schedulers', 'hparams_name', 'hyper_parameters': {'config': {...}}}``.
* ``expected_outputs.pth`` (keys ``pretrain`` and ``vqa``): the inputs (two random normalized images, two
  captions tokenized by the authors' tokenizer, ``padding='max_length'`` to 40 as their collate does) and, for
  the pre-training model, the outputs of ``infer(batch, text_only=True)`` / ``infer(batch, image_only=True)``
  (ITC embeddings, ``cls_feats``), their similarities divided by ``temp``, of the fused ``infer(batch)``:
  ``text_feats``, ``image_feats``, ``cls_feats``, ``itm_score(cls_feats)``, ``rank_output(cls_feats)``, and
  ``mlm_score`` of ``infer(batch, mask_text=True)`` with one token of each caption replaced by ``<mask>``
  (``mlm_input_ids``); for the VQA model ``infer(batch)`` and ``vqa_classifier(cls_feats)``.

Fine-grained (``fine_grained/maskrcnn_benchmark``): the parts of ``GeneralizedVLRCNN`` that the grounding forward
runs, built from the authors' builders with ``configs/refcoco.yaml`` (``SWINT.VERSION fusion``, ``FUSION_VERSION
v3`` for ``fiber-refcoco_tiny_authors.pth``; the same with ``FUSION_VERSION v2``, the fusion of their COCO, LVIS and
pre-training configs, whose image-to-text attention has no query LayerNorm, for ``fiber-coco_tiny_authors.pth``;
``CONV_BODY SWINT-FPN-RETINANET``, ``LANGUAGE_BACKBONE.MODEL_TYPE roberta-fused-v2``, ``RPN_ARCHITECTURE VLDYHEAD``
with the dot-product token head, GroupNorm 16, DyReLU, DyFuse, deformable convolutions): ``build_backbone`` +
``build_language_backbone`` + ``build_fusion_backbone(..., version)`` as ``fusion_backbone`` and ``VLDyHead(cfg)``
as ``rpn.head``, eval mode, run as ``GeneralizedVLRCNN.forward`` and ``VLDyHeadModule.forward`` run them
(``embedding = language_dict_features['embedded']``). Reduced sizes through the config: Swin widths 4-32 with
Swin-B's depths, heads (1, 1, 2, 2), window 3, FPN/head 16 channels, 2 DyHead blocks, language width 16 (the tiny
RoBERTa above). Patches: ``maskrcnn_benchmark._C`` (the CUDA extension, which cannot be built here) replaced by a
Python module whose ``modulated_deform_conv_forward`` calls ``torchvision.ops.deform_conv2d`` with the mask, reading
``offset[b]``/``mask[b]`` as the CUDA kernel does (the first ``C * H_out * W_out`` values of each sample: DyConv
passes the offsets of the neighbouring pyramid level, which mmcv's kernel reads the same way) and the CPU guard ``if
not input.is_cuda: raise NotImplementedError`` of ``ModulatedDeformConvFunction`` removed (the other ``_C``
functions, unused here, raise); the literal widths of Swin-B/RoBERTa-base in the fusion layers (768 in
``fusion_swin_transformer_v{2,3}.py``, 512/1024 in ``roberta_fused_model_v2.py``) made module variables, set to 16
and 16/32; ``RobertaConfig.from_pretrained`` / ``RobertaModel.from_pretrained`` replaced by the tiny config (no
download). Weights random as above (deformable offset convolutions scaled to offsets of about a pixel, log_scale
0.3), saved as maskrcnn_benchmark's checkpointer saves a ``DistributedDataParallel`` model: ``{'model': {'module.' +
key: ...}, 'optimizer', 'scheduler', 'iteration'}``. Expected outputs (``expected_outputs.pth``, keys ``refcoco``
and ``coco``): for two random 96x128 images (stored once, under ``refcoco``) and two captions padded to 24 tokens,
the fused text features (``language_dict_features['hidden']``), the five FPN levels and the head's per-level
``bbox_reg``, ``centerness`` and ``dot_product_logits``.

The largest difference between mmvlg's outputs and these was 9.1e-6 (fp32; coarse: MLM logits 9.1e-6, ITC
embeddings 2e-7, VQA logits 3e-8; fine "v3": fused text features 7.7e-6, FPN 5.2e-6, dot-product logits 1.0e-6,
box regression 1.6e-6, centerness 1.8e-6; fine "v2": 2.5e-6, 5.0e-6, 7.8e-7, 2.9e-6, 2.0e-6); the tests allow
1e-4.
"""
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules
from mmvlg.utils.checkpoint import UnsafeCheckpointError

register_all_modules()

DATA = osp.join(REPO_ROOT, 'tests', 'data', 'fiber_converter')
TOKENIZER = osp.join(DATA, 'tiny-roberta')
KINDS = ('pretrain', 'vqa', 'refcoco', 'coco')
FINE = ('refcoco', 'coco')
CONFIG = {kind: f'fiber-{kind}_tiny.py' for kind in KINDS}
CONFIG['pretrain'] = 'fiber-coarse_tiny.py'
SOURCE = {kind: 'fine' if kind in FINE else 'coarse' for kind in KINDS}
AUTHORS_FILE = {kind: f'fiber-{kind}_tiny_authors.' + ('pth' if kind in FINE else 'ckpt') for kind in KINDS}
TOL = 1e-4


def load_tool():
    import importlib.util
    path = osp.join(REPO_ROOT, 'tools', 'model_converters', 'fiber_to_mmvlg.py')
    spec = importlib.util.spec_from_file_location('_mmvlg_fiber_to_mmvlg', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def authors_checkpoint(kind: str) -> str:
    return osp.join(DATA, AUTHORS_FILE[kind])


def config_path(kind: str) -> str:
    return osp.join(DATA, CONFIG[kind])


def build_model(kind: str, **backbone_overrides) -> torch.nn.Module:
    cfg = Config.fromfile(config_path(kind))
    cfg.model.backbone.language_model.name_or_path = TOKENIZER
    cfg.model.backbone.update(backbone_overrides)
    return MODELS.build(cfg.model)


def convert(kind: str, dst: str) -> None:
    argv = [authors_checkpoint(kind), dst, '--source', SOURCE[kind], '--config', config_path(kind),
            '--cfg-options', f'model.backbone.language_model.name_or_path={TOKENIZER}']
    assert tool.main(argv) == 0


def read_authors(kind: str) -> dict:
    return torch.load(authors_checkpoint(kind), map_location='cpu', weights_only=True)


def authors_state(kind: str) -> dict:
    """The authors' state dict as the tool reads it (without the ``module.`` prefix of fine-grained files)."""
    return tool.load_authors_checkpoint(authors_checkpoint(kind), SOURCE[kind])[0]


@pytest.fixture(scope='module')
def expected():
    return torch.load(osp.join(DATA, 'expected_outputs.pth'), map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """The four tiny checkpoints converted once, and the models loaded from them (eval mode)."""
    out = {}
    for kind in KINDS:
        dst = str(tmp_path_factory.mktemp(kind) / 'converted.pth')
        convert(kind, dst)
        model = build_model(kind)
        load_checkpoint(model, dst, map_location='cpu', strict=True)  # what load_from and tools/test.py do
        out[kind] = (dst, model.eval())
    return out


def tokens_like_the_authors(model, want: dict) -> dict:
    """mmvlg's tokenization of the captions: the authors' ids, padded to the longest caption instead of 40."""
    tok = model.tokenize(want['texts'])
    length = tok['input_ids'].shape[1]
    assert torch.equal(tok['input_ids'], want['input_ids'][:, :length])
    assert torch.equal(tok['attention_mask'], want['attention_mask'][:, :length])
    assert not want['attention_mask'][:, length:].any()
    return tok


def close(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = float((got - want).abs().max())
    assert diff <= TOL, diff
    return diff


def fused_outputs(model, want: dict, mlm: bool = False) -> dict:
    tok = tokens_like_the_authors(model, want)
    if mlm:  # the authors' masked ids (one token of each caption replaced by <mask>)
        tok = dict(tok, input_ids=want['mlm_input_ids'][:, :tok['input_ids'].shape[1]])
    img_tokens, valid, text = model.encode(want['images'], tok, None, fusion=True)
    return model.pooler(img_tokens, valid, text['embeds']), tok['input_ids'].shape[1]


def test_pretrain_outputs_match_the_authors_code(converted, expected):
    _, model = converted['pretrain']
    want = expected['pretrain']
    samples = [DetDataSample(metainfo=dict(text=t, img_shape=want['images'].shape[-2:])) for t in want['texts']]
    with torch.no_grad():
        # ITC: dual encoder (fusion off), through predict
        model.predict(want['images'], samples)
        img_emb = torch.stack([s.img_embed for s in samples])
        text_emb = torch.stack([s.text_embed for s in samples])
        close(img_emb, want['itc_image'])
        close(text_emb, want['itc_text'])
        close(model.itc_head.similarity(img_emb, text_emb), want['itc_sim'])
        # the fusion encoder: projected tokens, pooled features, ITM and MLM
        fused, length = fused_outputs(model, want)
        close(fused['text'], want['fused_text_feats'][:, :length])
        close(fused['image'], want['fused_image_feats'])
        close(fused['cls'], want['cls_feats'])
        close(model.itm_head(fused['cls']), want['itm_logits'])
        masked, _ = fused_outputs(model, want, mlm=True)
        close(model.mlm_head(masked['text']), want['mlm_logits'][:, :length])
        # re-ranking's ITM score (the authors' rank_output) through the model's own path
        close(model.itm_scores(want['images'], None, want['texts']), want['rank_score'])


def test_vqa_outputs_match_the_authors_code(converted, expected):
    _, model = converted['vqa']
    want = expected['vqa']
    samples = [DetDataSample(metainfo=dict(text=t, img_shape=want['images'].shape[-2:])) for t in want['texts']]
    with torch.no_grad():
        close(model(want['images'], samples, mode='tensor'), want['vqa_logits'])
        fused, length = fused_outputs(model, want)
        close(fused['text'], want['fused_text_feats'][:, :length])
        close(fused['image'], want['fused_image_feats'])
        close(fused['cls'], want['cls_feats'])


@pytest.mark.parametrize('kind', FINE)
def test_fine_grained_outputs_match_the_authors_code(kind, converted, expected):
    """Backbone (fused text tokens), FPN levels and the raw head outputs: per-level dot-product grounding
    logits, box regression and centerness; the authors' "v3" fusion (RefCOCO) and "v2" fusion (COCO)."""
    _, model = converted[kind]
    want = expected[kind]
    images = expected['refcoco']['images']
    samples = [DetDataSample(metainfo=dict(text=t, img_shape=images.shape[-2:], pad_shape=images.shape[-2:]))
               for t in want['texts']]
    with torch.no_grad():
        tok = tokens_like_the_authors(model.backbone.language_model, want)
        length = tok['input_ids'].shape[1]
        _, text = model.backbone(images, None, None, tokens=tok)
        close(text['embeds'], want['text_hidden'][:, :length])
        neck, _ = model.extract_feat(images, samples)
        for got, ref in zip(neck, want['fpn'], strict=True):
            close(got, ref)
        logits, boxes, centerness = model._forward(images, samples)
    for got, ref in zip(logits, want['dot_product_logits'], strict=True):
        close(got, ref[..., :length])
    for got, ref in zip(boxes, want['bbox_reg'], strict=True):
        close(got, ref)
    for got, ref in zip(centerness, want['centerness'], strict=True):
        close(got, ref)


@pytest.mark.parametrize('option', ['fused_last_text_norm', 'fused_visual_out_norm', 'shift_single_window'])
def test_each_release_option_is_needed(option, converted, expected):
    """With any of the three options at mmvlg's default the fused outputs are not the authors'."""
    dst, _ = converted['pretrain']
    model = build_model('pretrain', **{option: True})
    load_checkpoint(model, dst, map_location='cpu', strict=True)
    model.eval()
    want = expected['pretrain']
    with torch.no_grad():
        fused, _ = fused_outputs(model, want)
    assert (fused['cls'] - want['cls_feats']).abs().max() > 100 * TOL


@pytest.mark.parametrize('kind', KINDS)
def test_converted_checkpoint_has_exactly_the_model_keys(kind, converted):
    dst, _ = converted[kind]
    checkpoint = torch.load(dst, map_location='cpu', weights_only=True)
    model = build_model(kind)
    result = model.load_state_dict(checkpoint['state_dict'], strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    meta = checkpoint['meta']
    assert meta['source'] == SOURCE[kind] and meta['added_keys'] == []
    assert meta['weights'] == ('model' if kind in FINE else 'state_dict')
    # every source key is mapped or listed as dropped, none twice
    source = authors_state(kind)
    mapped, _, unmapped = tool.map_state(source, SOURCE[kind])
    assert unmapped == []
    used = {src for new, parts in mapped.items() if new in checkpoint['state_dict'] for _, src in parts}
    dropped = {d.split(':')[0] for d in meta['dropped_keys']}
    assert len(dropped) == len(meta['dropped_keys']) and not used & dropped
    assert used | dropped == set(source)
    if kind in FINE:
        assert dropped == {'fusion_backbone.language_backbone.body.model.embeddings.position_ids',
                           'rpn.head.cls_logits.weight', 'rpn.head.cls_logits.bias'}
        return
    assert 'text_transformer.embeddings.position_ids' in dropped
    assert 'text_transformer.encoder.layer.0.alpha_t2i' in dropped  # a layer without cross-attention
    assert 'text_transformer.encoder.layer.6.crossattention_t2i.output.LayerNorm.weight' in dropped
    assert 'vit_model.layers.2.blocks.1.attn_mask' in dropped
    if kind == 'pretrain':
        assert {'image_queue', 'image_input_queue', 'queue_ptr', 'rank_output.weight'} <= dropped
    else:
        assert not any(d.startswith(('itm_score', 'mlm_score')) for d in dropped)


def test_pretrain_heads_are_dropped_for_a_model_without_them(tmp_path):
    """The pre-training checkpoint into a dual encoder (ITC only): the fused projections and the ITM/MLM heads
    are dropped with their reasons."""
    cfg = Config.fromfile(config_path('pretrain'))
    cfg.model.backbone.language_model.name_or_path = TOKENIZER
    cfg.model.itm_head = cfg.model.mlm_head = None
    model = MODELS.build(cfg.model)
    out = tool.convert_checkpoint(authors_checkpoint('pretrain'), str(tmp_path / 'out.pth'), 'coarse', model)
    reasons = {d.split(':')[0]: d for d in out['meta']['dropped_keys']}
    assert 'ITM head' in reasons['itm_score.fc.weight'] and 'MLM head' in reasons['mlm_score.bias']
    assert 'fused-feature projections' in reasons['cross_modal_text_transform.weight']


def test_init_cfg_pretrained_loads_the_converted_checkpoint(converted):
    dst, _ = converted['vqa']
    cfg = Config.fromfile(config_path('vqa'))
    cfg.model.backbone.language_model.name_or_path = TOKENIZER
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=dst)
    model = MODELS.build(cfg.model)
    model.init_weights()
    state = torch.load(dst, map_location='cpu', weights_only=True)['state_dict']
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name


def _convert_modified(tmp_path, kind: str, modify) -> None:
    checkpoint = read_authors(kind)
    modify(checkpoint['state_dict'])
    src = str(tmp_path / 'modified.ckpt')
    torch.save(checkpoint, src)
    tool.convert_checkpoint(src, str(tmp_path / 'out.pth'), 'coarse', build_model(kind))


def test_unmapped_key_is_an_error_that_names_it(tmp_path):
    def add_unknown(state):
        state['snli_classifier.0.weight'] = torch.zeros(4, 48)
        state['vit_model.layers.0.blocks.0.attn.extra_scale'] = torch.zeros(1)
    with pytest.raises(tool.ConversionError) as err:
        _convert_modified(tmp_path, 'vqa', add_unknown)
    assert 'snli_classifier.0.weight' in str(err.value)
    assert 'vit_model.layers.0.blocks.0.attn.extra_scale' in str(err.value)
    assert not osp.exists(tmp_path / 'out.pth')


def test_shape_mismatch_is_an_error_that_names_it(tmp_path):
    def widen(state):
        state['vqa_classifier.3.weight'] = torch.zeros(9, 48)
    with pytest.raises(tool.ConversionError) as err:
        _convert_modified(tmp_path, 'vqa', widen)
    message = str(err.value)
    assert 'vqa_classifier.3.weight -> vqa_head.classifier.3.weight' in message
    assert '(9, 48)' in message and '(7, 48)' in message


def test_missing_tensor_is_an_error_that_names_it(tmp_path):
    with pytest.raises(tool.ConversionError, match=r'backbone\.language_model\.model\.encoder\.layer\.3\.output\.'
                                                   r'dense\.weight'):
        _convert_modified(tmp_path, 'vqa', lambda s: s.pop('text_transformer.encoder.layer.3.output.dense.weight'))


def test_missing_half_of_a_concatenated_tensor_is_an_error(tmp_path):
    key = 'text_transformer.encoder.layer.7.crossattention_t2i.self.value.bias'
    with pytest.raises(tool.ConversionError, match=r'layer\.7\.crossattention_t2i\.self\.key\.bias -> '
                                                   r'backbone\.t2i_attns\.1\.kv_proj\.bias \(needs 2 parts\)'):
        _convert_modified(tmp_path, 'vqa', lambda s: s.pop(key))


def test_fusion_versions_need_their_config(tmp_path):
    """A "v2" checkpoint (no query LayerNorm in the image-to-text attention) into a "v3" model and back are
    errors naming the LayerNorm."""
    with pytest.raises(tool.ConversionError, match=r'(?s)does not provide.*backbone\.i2t_attns\.0\.query_norm'):
        tool.convert_checkpoint(authors_checkpoint('coco'), str(tmp_path / 'out.pth'), 'fine', build_model('refcoco'))
    with pytest.raises(tool.ConversionError, match=r'norm_i2t_i\.weight -> backbone\.i2t_attns\.0\.query_norm'):
        tool.convert_checkpoint(authors_checkpoint('refcoco'), str(tmp_path / 'out.pth'), 'fine', build_model('coco'))


def test_fine_grained_unmapped_fpn_level_is_an_error(tmp_path):
    checkpoint = read_authors('refcoco')
    checkpoint['model']['module.fusion_backbone.backbone.fpn.fpn_inner5.weight'] = torch.zeros(16, 64, 1, 1)
    checkpoint['model']['module.rpn.head.token_logits.weight'] = torch.zeros(256, 16, 1, 1)
    src = str(tmp_path / 'modified.pth')
    torch.save(checkpoint, src)
    with pytest.raises(tool.ConversionError) as err:
        tool.convert_checkpoint(src, str(tmp_path / 'out.pth'), 'fine', build_model('refcoco'))
    assert 'fpn_inner5.weight -> neck.lateral_convs.3.conv.weight' in str(err.value)  # a 4th level: not in the model
    assert 'rpn.head.token_logits.weight' in str(err.value)


def test_rank_output_must_be_the_itm_match_row(tmp_path):
    def change(state):
        state['rank_output.bias'] = state['rank_output.bias'] + 1
    with pytest.raises(tool.ConversionError, match='rank_output.bias is not row 1 of itm_score.fc.bias'):
        _convert_modified(tmp_path, 'pretrain', change)


def test_wrong_source_is_an_error(tmp_path):
    with pytest.raises(tool.ConversionError, match='no "model" entry'):
        tool.convert_checkpoint(authors_checkpoint('vqa'), str(tmp_path / 'out.pth'), 'fine', build_model('vqa'))
    with pytest.raises(tool.ConversionError, match='no "state_dict" entry'):
        tool.convert_checkpoint(authors_checkpoint('refcoco'), str(tmp_path / 'out.pth'), 'coarse',
                                build_model('refcoco'))
    torch.save(dict(state_dict={'backbone.body.layers.0.weight': torch.zeros(1)}), str(tmp_path / 'other.ckpt'))
    # a coarse file whose weights are not the coarse model's (e.g. a fine-grained state dict saved by Lightning)
    with pytest.raises(tool.ConversionError, match='--source fine'):
        tool.convert_checkpoint(str(tmp_path / 'other.ckpt'), str(tmp_path / 'out.pth'), 'coarse',
                                build_model('vqa'))


class _Payload:
    """Not plain data: unpickling it must be refused."""


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    src = str(tmp_path / 'unsafe.ckpt')
    checkpoint = read_authors('vqa')
    checkpoint['hyper_parameters'] = dict(config=_Payload())
    torch.save(checkpoint, src)
    with pytest.raises(UnsafeCheckpointError, match=r'(?s)_Payload.*extract them'):
        tool.load_authors_checkpoint(src, 'coarse')


def test_patch_merging_order_is_mmdet_swin_converter():
    """The patch-merging reordering is the one of mmdet's converter of official Swin checkpoints."""
    from mmdet.models.backbones.swin import swin_converter
    g = torch.Generator().manual_seed(0)
    official = {'layers.1.downsample.reduction.weight': torch.randn(16, 32, generator=g),
                'layers.1.downsample.norm.weight': torch.randn(32, generator=g)}
    ref = swin_converter(official)
    assert torch.equal(tool.unfold_reduction_order(official['layers.1.downsample.reduction.weight']),
                       ref['backbone.stages.1.downsample.reduction.weight'])
    assert torch.equal(tool.unfold_norm_order(official['layers.1.downsample.norm.weight']),
                       ref['backbone.stages.1.downsample.norm.weight'])


@pytest.mark.parametrize('config,window,size', [
    ('configs/fiber/fiber-coarse-release_swin-b_roberta-base_64xb64-100k_coco-vg-sbu-cc.py', 12, 384),
    ('configs/fiber/fiber-vqa-release_swin-b_roberta-base_8xb64-10e_vqav2.py', 18, 576),
])
def test_release_configs(config, window, size):
    """The configs of the released checkpoints describe the authors' architectures: Swin-B with the window
    ``image_size / 32`` and the authors' three computations."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    backbone = cfg.model.backbone
    assert backbone.visual.window_size == window == size // 32 and backbone.visual.depths == (2, 2, 18, 2)
    assert backbone.visual.embed_dims == 128 and backbone.num_fusion_layers == 6
    assert not backbone.fused_last_text_norm and not backbone.fused_visual_out_norm
    assert not backbone.shift_single_window and backbone.visual_checkpoint is None
    resize = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'mmdet.Resize'][0]
    assert resize['scale'] == (size, size) and resize['interpolation'] == 'bicubic'


@pytest.mark.parametrize('config', ['configs/fiber/fiber-release_swin-b_roberta-base_8xb2-20e_refcoco.py',
                                    'configs/fiber/fiber-release-v2_swin-b_roberta-base_16xb2-24e_coco.py'])
def test_fine_grained_release_configs(config):
    """The authors' fine-grained models read BGR images normalized with their configs' BGR mean/std; the
    "v2" fusion (COCO, LVIS, pre-training) has no query LayerNorm in the image-to-text attention."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    assert cfg.model.backbone.get('i2t_query_norm', True) == ('refcoco' in config)
    pre = cfg.model.data_preprocessor
    assert pre.bgr_to_rgb is False and pre.mean == [103.53, 116.28, 123.675] and pre.std == [57.375, 57.12, 58.395]
    assert cfg.model.backbone.visual.window_size == 12 and cfg.model.backbone.visual.depths == (2, 2, 18, 2)
    assert cfg.model.backbone.get('shift_single_window', True) and cfg.model.backbone.visual_checkpoint is None
