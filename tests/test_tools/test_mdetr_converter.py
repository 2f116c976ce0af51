"""Tests of tools/model_converters/mdetr_to_mmvlg.py: the authors' MDETR and SiRi checkpoints in mmvlg, with
outputs identical to the authors' code.

How the data in ``tests/data/mdetr_converter/`` was produced. The authors' code is not part of this repository
and no script that imports or runs it is committed; it was run once, in a scratch folder outside the repository:

* Code: ashkamath/mdetr at commit ea09acc44ca067072c4b143b726447ee7ff66f5f and qumengxue/siri-vg at commit
  1fa6b058645469ed73683034b438841eac0653ee (``git archive``), on CPU with torch 2.13.0, torchvision 0.28.0,
  transformers 5.23.0, timm 1.0.31. Patched only where today's libraries break them or for the reduced sizes:
  ``tokenizer.batch_encode_plus(...)`` -> ``tokenizer(...)`` (gone in transformers 5); siri-vg's
  ``util/misc.py`` torchvision version test (``float('0.28'[:3]) < 0.7``) disabled; siri-vg's
  ``models/gauss_map.py`` proposal-embedding width (the literal 128 = 256 // 2) made a module variable, set to 16.
* Models: built from the authors' classes as their ``hubconf.py``/``build`` do (``Backbone`` + ``Joiner`` with
  ``PositionEmbeddingSine(hidden_dim // 2, normalize=True)``, ``Transformer(return_intermediate_dec=True)``,
  ``MDETR``), eval mode, with these reduced settings:

  - ``mdetr_tiny_authors.pth`` (ashkamath/mdetr): backbone torchvision's ``ResNet`` class with ``BasicBlock``
    [2, 2, 2, 2] and stage widths 4-32 (the released models: ResNet-101, widths 64-512) and MDETR's
    ``FrozenBatchNorm2d``, registered as a torchvision model name; hidden_dim 32, nheads 4, dim_feedforward 64,
    enc_layers 2, dec_layers 2, num_queries 5, num_classes 255 (256 soft tokens), contrastive_align_loss with
    contrastive_hdim 16.
  - ``siri_tiny_authors.pth`` (qumengxue/siri-vg, ``--cascade_num 1``, one decoder): ``Bottleneck`` [3, 4, 6, 3]
    with widths 2-16 (outputs 8-64), layer2 + layer4 returned; ``add_feature`` rebuilt with the reduced channels
    16 -> 32 -> 64 (released: 512 -> 1024 -> 2048) and ``pos_trans_norm`` as ``LayerNorm(32)`` (released: 256);
    hidden_dim 32, nheads 4, dim_feedforward 64, 2 + 2 layers, num_queries 16, num_classes 1 (SiRi's 2 soft
    tokens), ``--no_contrastive_align_loss``.
  - ``siri-mt_tiny_authors.pth``: the same with ``--cascade_num 2`` (multi-task SiRi: a second decoder with the
    constant grid queries; the authors' model outputs the second decoder's predictions).
  - ``mdetr-enb_tiny_authors.pth`` (ashkamath/mdetr, ``--backbone timm_<name>``): as ``mdetr_tiny_authors.pth``
    with MDETR's ``TimmBackbone`` (features-only, last stage, every BatchNorm replaced by ``FrozenBatchNorm2d``)
    on a reduced ``tf_efficientnet_b0`` layout (timm's ``_gen_efficientnet`` with channel and depth multipliers
    0.25, BatchNorm epsilon 1e-3, 'same' padding; released: tf_efficientnet_b3_ns/b5_ns), registered in timm as
    ``mmvlg_test_tf_efficientnet_tiny`` (the test registers the same model). This one ran with timm 0.4.12, the
    version of the authors' time (BatchNorm and activation as separate modules: with timm >= 0.6 MDETR's
    ``replace_bn`` would also remove the activations fused into ``BatchNormAct2d``); ``create_model`` called with
    ``pretrained=False`` (no download).

  The text encoder of all three: ``RobertaModel`` of ``tiny-roberta/config.json`` (1 layer, width 24) with the
  byte-level BPE tokenizer in ``tiny-roberta/`` (300 tokens, trained offline with ``tokenizers`` on a dozen
  referring expressions; no weights there: they come from the checkpoints).
* Weights: every tensor drawn at random with fixed seeds (BatchNorm statistics and all biases too; the last layer
  of the box MLP scaled by 20 so that the boxes spread over the image; in the EfficientNet the BatchNorm variances
  scaled by 0.02, as small as trained EfficientNets have, so that the epsilon matters), saved like the authors'
  ``main.py`` does:
  ``{'model': ..., 'model_ema': model + N(0, 0.01) noise, 'epoch': 0, 'args': argparse.Namespace}``.
* ``expected_outputs.pth``: the inputs (two random normalized images of 64x80 and 48x96 padded to 64x96, with
  the padding mask of a ``NestedTensor``, and two captions) and, for both weight sets, the authors' ``forward``
  (``encode_and_save=True`` then ``False``) ``pred_logits`` and ``pred_boxes``, plus every decoder layer's
  ``class_embed`` / sigmoid(``bbox_embed``) outputs of each decoder (forward hooks).

The largest difference between mmvlg's outputs and these was 9e-7 (fp32); the tests allow 1e-4.
"""
import argparse
import importlib.util
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

DATA = osp.join(REPO_ROOT, 'tests', 'data', 'mdetr_converter')
TOKENIZER = osp.join(DATA, 'tiny-roberta')
KINDS = ('mdetr', 'mdetr-enb', 'siri', 'siri-mt')
SOURCE = {'mdetr': 'mdetr', 'mdetr-enb': 'mdetr', 'siri': 'siri', 'siri-mt': 'siri'}


def _register_tiny_efficientnet() -> None:
    """The reduced EfficientNet of ``mdetr-enb_tiny_authors.pth`` as a timm model name."""
    from timm.models import is_model, register_model
    from timm.models.efficientnet import _gen_efficientnet
    if is_model('mmvlg_test_tf_efficientnet_tiny'):
        return

    @register_model
    def mmvlg_test_tf_efficientnet_tiny(pretrained=False, **kwargs):
        kwargs.setdefault('bn_eps', 1e-3)
        kwargs.setdefault('pad_type', 'same')
        return _gen_efficientnet('tf_efficientnet_b0', channel_multiplier=0.25, depth_multiplier=0.25,
                                 pretrained=pretrained, **kwargs)


_register_tiny_efficientnet()
TOL = 1e-4


def load_tool():
    path = osp.join(REPO_ROOT, 'tools', 'model_converters', 'mdetr_to_mmvlg.py')
    spec = importlib.util.spec_from_file_location('_mmvlg_mdetr_to_mmvlg', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def authors_checkpoint(kind: str) -> str:
    return osp.join(DATA, f'{kind}_tiny_authors.pth')


def config_path(kind: str) -> str:
    return osp.join(DATA, f'{kind}_tiny.py')


def build_model(kind: str, **model_overrides) -> torch.nn.Module:
    cfg = Config.fromfile(config_path(kind))
    cfg.model.language_model.name_or_path = TOKENIZER
    cfg.model.update(model_overrides)
    return MODELS.build(cfg.model)


def convert(kind: str, dst: str, use_ema: bool = True, *extra: str) -> None:
    argv = [authors_checkpoint(kind), dst, '--source', SOURCE[kind], '--config', config_path(kind),
            '--cfg-options', f'model.language_model.name_or_path={TOKENIZER}', *extra]
    assert tool.main(argv + (['--use-ema'] if use_ema else [])) == 0


def read_authors(kind: str) -> dict:
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(authors_checkpoint(kind), map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def expected():
    return torch.load(osp.join(DATA, 'expected_outputs.pth'), map_location='cpu', weights_only=True)


def data_samples(expected) -> list:
    return [DetDataSample(metainfo=dict(img_shape=tuple(shape), text=caption))
            for shape, caption in zip(expected['image_shapes'].tolist(), expected['captions'])]


@pytest.mark.parametrize('use_ema', [True, False])
@pytest.mark.parametrize('kind', KINDS)
def test_outputs_match_the_authors_code(kind, use_ema, expected, tmp_path):
    dst = str(tmp_path / 'converted.pth')
    convert(kind, dst, use_ema)
    model = build_model(kind)
    load_checkpoint(model, dst, map_location='cpu', strict=True)  # what load_from and tools/test.py do
    model.eval()
    want = expected['outputs'][kind]['model_ema' if use_ema else 'model']
    images, samples = expected['images'], data_samples(expected)
    with torch.no_grad():
        enc = model.encode(images, samples)
        decoders = ['main', 'aux'] if kind == 'siri-mt' else ['main']
        for i, which in enumerate(decoders):  # every layer of every decoder
            head = model.bbox_head if which == 'main' else model.aux_head
            logits, boxes = head(model.decode(enc, which))
            assert logits.shape == want[f'decoder{i}_logits'].shape
            assert (logits - want[f'decoder{i}_logits']).abs().max() <= TOL
            assert (boxes - want[f'decoder{i}_boxes']).abs().max() <= TOL
        # the model's own output (multi-task SiRi predicts with the second decoder, as the authors' code)
        logits, boxes = model._forward(images, samples)
    assert (logits[-1] - want['pred_logits']).abs().max() <= TOL
    assert (boxes[-1] - want['pred_boxes']).abs().max() <= TOL
    other = expected['outputs'][kind]['model' if use_ema else 'model_ema']
    assert (boxes[-1] - other['pred_boxes']).abs().max() > 100 * TOL  # the EMA and raw weights do differ


@pytest.mark.parametrize('kind', KINDS)
def test_converted_checkpoint_has_exactly_the_model_keys(kind, tmp_path):
    dst = str(tmp_path / 'converted.pth')
    convert(kind, dst)
    checkpoint = torch.load(dst, map_location='cpu', weights_only=True)
    model = build_model(kind)
    result = model.load_state_dict(checkpoint['state_dict'], strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    meta = checkpoint['meta']
    assert meta['source'] == SOURCE[kind] and meta['weights'] == 'model_ema'
    assert all(k.endswith('num_batches_tracked') for k in meta['added_keys'])
    # every source key is mapped or listed as dropped
    source_keys = set(read_authors(kind)['model_ema'])
    dropped = {d.split(':')[0] for d in meta['dropped_keys']}
    assert len(checkpoint['state_dict']) - len(meta['added_keys']) + len(dropped) == len(source_keys)
    assert dropped <= source_keys
    if kind == 'siri-mt':
        assert any(d.startswith('transformer.1.encoder.') for d in dropped)
        assert any(d.startswith('transformer.1.text_encoder.') for d in dropped)
        assert 'pos_trans_norm.weight' not in dropped  # it normalizes the second decoder's queries
        assert 'aux_query_norm.weight' in checkpoint['state_dict']
    if kind.startswith('siri'):
        assert any('sent_pos_attn' in d for d in dropped)


def test_init_cfg_pretrained_loads_the_converted_checkpoint(tmp_path):
    dst = str(tmp_path / 'converted.pth')
    convert('siri-mt', dst)
    model = build_model('siri-mt', init_cfg=dict(type='Pretrained', checkpoint=dst))
    model.init_weights()
    state = torch.load(dst, map_location='cpu', weights_only=True)['state_dict']
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_use_ema_needs_ema_weights(tmp_path):
    checkpoint = read_authors('mdetr')
    checkpoint['model_ema'] = None
    src = str(tmp_path / 'no_ema.pth')
    torch.save(checkpoint, src)
    with pytest.raises(tool.ConversionError, match='model_ema'):
        tool.convert_checkpoint(src, str(tmp_path / 'out.pth'), 'mdetr', build_model('mdetr'), use_ema=True)


def _convert_modified(tmp_path, kind: str, modify, model=None) -> None:
    checkpoint = read_authors(kind)
    modify(checkpoint['model'])
    src = str(tmp_path / 'modified.pth')
    torch.save(checkpoint, src)
    tool.convert_checkpoint(src, str(tmp_path / 'out.pth'), SOURCE[kind], model or build_model(kind))


def test_unmapped_key_is_an_error_that_names_it(tmp_path):
    def add_qa_head(state):
        state['qa_embed.weight'] = torch.zeros(6, 32)
        state['transformer.CLS.weight'] = torch.zeros(1, 32)
    with pytest.raises(tool.ConversionError) as err:
        _convert_modified(tmp_path, 'mdetr', add_qa_head)
    assert 'qa_embed.weight' in str(err.value) and 'transformer.CLS.weight' in str(err.value)
    assert not osp.exists(tmp_path / 'out.pth')


def test_shape_mismatch_is_an_error_that_names_it(tmp_path):
    def widen(state):
        state['query_embed.weight'] = torch.zeros(7, 32)
    with pytest.raises(tool.ConversionError) as err:
        _convert_modified(tmp_path, 'mdetr', widen)
    message = str(err.value)
    assert 'query_embed.weight -> query_embedding.weight' in message and '(7, 32)' in message and '(5, 32)' in message


def test_missing_tensor_is_an_error_that_names_it(tmp_path):
    with pytest.raises(tool.ConversionError, match=r'neck\.input_proj\.weight'):
        _convert_modified(tmp_path, 'siri', lambda state: state.pop('input_proj.weight'))


def test_config_without_second_decoder_rejects_a_multi_task_checkpoint(tmp_path):
    with pytest.raises(tool.ConversionError, match=r'transformer\.1\.decoder\.layers\.0\.self_attn\.in_proj_weight '
                                                   r'-> aux_decoder'):
        tool.convert_checkpoint(authors_checkpoint('siri-mt'), str(tmp_path / 'out.pth'), 'siri',
                                build_model('siri'))


def test_contrastive_heads_are_dropped_when_the_config_has_none(tmp_path, expected):
    dst = str(tmp_path / 'out.pth')
    model = build_model('mdetr', bbox_head=dict(Config.fromfile(config_path('mdetr')).model.bbox_head,
                                                contrastive_align=None))
    out = tool.convert_checkpoint(authors_checkpoint('mdetr'), dst, 'mdetr', model, use_ema=True)
    dropped = [d for d in out['meta']['dropped_keys'] if d.startswith('contrastive_align_projection_')]
    assert len(dropped) == 4
    model.eval()
    with torch.no_grad():
        logits, _ = model._forward(expected['images'], data_samples(expected))
    assert (logits[-1] - expected['outputs']['mdetr']['model_ema']['pred_logits']).abs().max() <= TOL


def test_wrong_source_is_an_error(tmp_path):
    with pytest.raises(tool.ConversionError, match='--source siri'):
        tool.convert_checkpoint(authors_checkpoint('siri'), str(tmp_path / 'out.pth'), 'mdetr', build_model('siri'))
    with pytest.raises(tool.ConversionError, match='--source mdetr'):
        tool.convert_checkpoint(authors_checkpoint('mdetr'), str(tmp_path / 'out.pth'), 'siri', build_model('mdetr'))


class _Payload:
    """Not plain data: unpickling it must be refused."""


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    src = str(tmp_path / 'unsafe.pth')
    torch.save(dict(model={}, extra=_Payload()), src)
    with pytest.raises(UnsafeCheckpointError):
        tool.load_authors_checkpoint(src)


def test_siri_grid_queries_are_the_authors():
    """The released code's constant queries: the points 20/40/60/80 of a 100 x 100 grid (first coordinate
    slowest), /99, sigmoid, 128 sine-cosine features per coordinate (written out here for 16 queries, 256 dims)."""
    import math

    from mmvlg.models.layers.positional_encoding import siri_grid_query_embed
    ticks = torch.tensor([20., 40., 60., 80.])
    points = torch.tensor([[a, b] for a in ticks for b in ticks]) / 99
    dim_t = 10000**(2 * (torch.arange(128) // 2) / 128)
    pos = points.sigmoid()[:, :, None] * 2 * math.pi / dim_t
    want = torch.zeros(16, 256)
    for c in range(2):
        want[:, c * 128:(c + 1) * 128:2] = pos[:, c, 0::2].sin()
        want[:, c * 128 + 1:(c + 1) * 128:2] = pos[:, c, 1::2].cos()
    assert torch.allclose(siri_grid_query_embed(16, 256), want, atol=1e-6)
    with pytest.raises(ValueError, match='square'):
        siri_grid_query_embed(15, 256)


@pytest.mark.parametrize('config', [
    'configs/mdetr/mdetr_r101_roberta-base_2xb4-5e_refcoco.py',
    'configs/mdetr/mdetr_enb3_roberta-base_2xb4-5e_refcocog.py',
    'configs/mdetr/mdetr_enb5_roberta-base_2xb4-5e_refcoco.py',
    'configs/siri/siri-mt-release_mdetr-star_r101_roberta-base_4xb18-35e-5x30e_refcoco+.py',
])
def test_release_configs(config):
    """The configs of the released checkpoints describe the authors' architectures."""
    model = Config.fromfile(osp.join(REPO_ROOT, config)).model
    if 'siri' in config:
        assert model.aux_decoder.queries == 'siri' and model.predict_with == 'aux' and model.num_queries == 16
        assert model.neck.get('with_fusion', True) and model.bbox_head.num_soft_tokens == 2
        return
    assert model.num_queries == 100 and model.bbox_head.num_soft_tokens == 256
    assert model.bbox_head.contrastive_align.embed_dims == 64 and model.neck.with_fusion is False
    if 'enb' in config:
        assert model.backbone.type == 'TimmBackbone' and model.backbone.norm_eps == 1e-5
        assert model.neck.in_channels == ((512, ) if 'enb5' in config else (384, ))


def test_timm_backbone_frozen_norm_options():
    """MDETR's EfficientNets run every BatchNorm as its FrozenBatchNorm2d (epsilon 1e-5, no training)."""
    from mmvlg.models.backbones import TimmBackbone
    backbone = TimmBackbone('tf_efficientnet_b0', out_indices=(4, ), norm_eval=True, norm_eps=1e-5, freeze_norm=True)
    norms = [m for m in backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(m.eps == 1e-5 and not any(p.requires_grad for p in m.parameters()) for m in norms)
    assert any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not any(m.training for m in norms)


def test_efficientnet_needs_mdetr_frozen_norm_epsilon(expected, tmp_path):
    """With timm's epsilon (1e-3) instead of MDETR's FrozenBatchNorm2d one (1e-5) the outputs are wrong."""
    dst = str(tmp_path / 'converted.pth')
    convert('mdetr-enb', dst)
    model = build_model('mdetr-enb', backbone=dict(Config.fromfile(config_path('mdetr-enb')).model.backbone,
                                                   norm_eps=None))
    load_checkpoint(model, dst, map_location='cpu', strict=True)
    model.eval()
    with torch.no_grad():
        _, boxes = model._forward(expected['images'], data_samples(expected))
    assert (boxes[-1] - expected['outputs']['mdetr-enb']['model_ema']['pred_boxes']).abs().max() > 100 * TOL


def test_roberta_position_ids_of_old_transformers_are_dropped(tmp_path):
    """Checkpoints saved with transformers < 4.31 (the released ones: 4.5) hold RoBERTa's position_ids buffer."""
    checkpoint = read_authors('siri')
    for entry in ('model', 'model_ema'):
        checkpoint[entry]['transformer.0.text_encoder.embeddings.position_ids'] = torch.arange(64)[None]
    src = str(tmp_path / 'old_transformers.pth')
    torch.save(checkpoint, src)
    out = tool.convert_checkpoint(src, str(tmp_path / 'out.pth'), 'siri', build_model('siri'), use_ema=True)
    dropped = out['meta']['dropped_keys']
    assert any(d.startswith('transformer.0.text_encoder.embeddings.position_ids: ') for d in dropped)
