# Convert the authors' released FIBER checkpoints (microsoft/FIBER) to mmvlg checkpoints.
"""Convert a checkpoint of the authors' FIBER code (microsoft/FIBER) to mmvlg.

Two sources:

* ``--source coarse``: the coarse-grained models (``coarse_grained/``, PyTorch Lightning ``.ckpt`` files:
  ``fiber_pretrain.ckpt``, the retrieval, VQA, NLVR2 and captioning fine-tunings), whose weights are the
  checkpoint's ``state_dict`` (``FIBERTransformerSS``: ``vit_model.*`` Swin, ``text_transformer.*`` RoBERTa,
  ``cross_modal_*`` projections and poolers, ``itm_score``, ``mlm_score``, ``vqa_classifier``, ...), into
  :class:`~mmvlg.models.FIBERCoarse` or :class:`~mmvlg.models.FIBERVQA`;
* ``--source fine``: the fine-grained models (``fine_grained/``, maskrcnn_benchmark ``.pth`` files whose
  ``model`` entry holds the ``GeneralizedVLRCNN`` weights with the ``module.`` prefix: ``fiber_refcoco.pth``,
  ``fiber_coco.pth``, ``fiber_coarse_then_fine.pth``, ...), into :class:`~mmvlg.models.FIBER` /
  ``FIBERObjectDetector``: ``fusion_backbone.backbone.body`` (Swin), ``fusion_backbone.language_backbone.body.
  model`` (RoBERTa), ``fusion_backbone.backbone.fpn`` (``fpn_inner{n}``/``fpn_layer{n}``/``top_blocks.p6,p7``
  -> mmdet's FPN ``lateral_convs``/``fpn_convs``) and ``rpn.head`` (``VLDyHead`` -> mmdet's GLIP head module
  ``bbox_head.head``: ``DyConv`` -> ``dyconvs``, ``AttnConv`` -> ``attnconv``, the ``(1,)`` scales -> scalars).

The file is read with ``torch.load(weights_only=True)``: nothing in it is executed, and no class is
allow-listed beyond torch's own plain data. Lightning checkpoints keep their ``hyper_parameters`` (the
authors' sacred config) and optimizer states next to the weights; a file in which these hold objects of other
classes (e.g. a sacred ``ReadOnlyDict``) is refused (:class:`~mmvlg.utils.checkpoint.UnsafeCheckpointError`,
naming the class). Its weights can then be extracted where the authors' code is trusted and installed:
``torch.save({'state_dict': torch.load(src, weights_only=False)['state_dict']}, 'weights.ckpt')``, and that file
converted.

The Swin, RoBERTa and cross-attention keys are mapped by one set of rules for both sources (the authors use the
same module names in both code bases): Swin keys of the official layout -> mmdet's ``SwinTransformer`` (patch
merging weights reordered for mmdet's ``nn.Unfold``); the image-to-text attention of a Swin block
(``qkv_i2t``, ``qkv_text_i2t``, ``proj_i2t``, ``norm_i2t_i``, ``alpha_i2t``) and the text-to-image attention
of a RoBERTa layer (``crossattention_t2i.self.{query,key,value}``, ``crossattention_t2i.output.dense``,
``alpha_t2i``) -> :class:`~mmvlg.models.layers.GatedCrossAttention` (``key`` and ``value`` concatenated into
``kv_proj``).

Every source key is either mapped or dropped for a stated reason, listed in the output's
``meta['dropped_keys']`` (and printed):

* buffers that are recomputed: Swin's ``attn_mask``, RoBERTa's ``position_ids`` (Swin's
  ``relative_position_index`` is mapped and checked to be the model's own);
* tensors the authors' code builds but never uses: ``crossattention_t2i.output.LayerNorm`` (their cross-attention
  output is not normalized) and ``alpha_t2i`` of the RoBERTa layers without cross-attention, the RoBERTa pooler
  (when the language model has none);
* the ALBEF feature queues of ITC training (``image_queue``, ``text_queue``, ``*_input_queue``, ``queue_ptr``,
  ``queue_total``; mmvlg's ITC uses in-batch negatives);
* ``rank_output``, the ITM match row that the authors' retrieval evaluation reads: a view of row 1 of
  ``itm_score.fc`` (checked: a checkpoint where they differ is an error), which is what ``ITMHead.score`` reads;
* heads the target config lacks (ITC, ITM, MLM, VQA heads and the fused poolers, e.g. the pre-training heads
  when converting for VQA), and the heads mmvlg has no model for (``nlvr2_classifier``,
  ``cross_modal_att_layers`` of captioning);
* fine-grained: ``rpn.head.cls_logits``, the fixed-class classifier that VLDyHead computes but the grounding
  model never reads (its scores are the dot-product logits), and anchor-generator buffers.

Lightning's optimizer and scheduler states, callbacks and hyper-parameters are not weights and are not read.
Anything else without counterpart, a tensor whose shape differs from the model's, or a model tensor that the
checkpoint does not provide is an error (:class:`ConversionError`) that names the keys. These checks, the model
building and the writing are shared by every converter (:mod:`mmvlg.utils.converters`); the key rules are this
file's.

The authors' coarse-grained model differs from mmvlg's defaults in three ways that change its outputs; the
release configs set the matching :class:`~mmvlg.models.backbones.FIBERBackbone` options
(``fused_last_text_norm=False``, ``fused_visual_out_norm=False``, ``shift_single_window=False``), and its Swin's
window is ``image_size / 32`` (12 at 384, 18 at 576 for VQA and ITC retrieval). The fine-grained models compute
as mmvlg's FIBER but read BGR images normalized with BGR means/stds (the release configs' data preprocessor);
those of the authors' "v2" fusion (their COCO, LVIS and fine-grained pre-training configs) have no query
LayerNorm in the image-to-text attention (``i2t_query_norm=False``,
``configs/fiber/fiber-release-v2_swin-b_roberta-base_16xb2-24e_coco.py``).

Usage:
    python tools/model_converters/fiber_to_mmvlg.py fiber_pretrain.ckpt fiber-coarse_pretrain.pth --source coarse \\
        --config configs/fiber/fiber-coarse-release_swin-b_roberta-base_64xb64-100k_coco-vg-sbu-cc.py \\
        --cfg-options model.backbone.language_model.name_or_path=/models/roberta-base
    python tools/model_converters/fiber_to_mmvlg.py fiber_vqa.ckpt fiber-vqa.pth --source coarse \\
        --config configs/fiber/fiber-vqa-release_swin-b_roberta-base_8xb64-10e_vqav2.py
    python tools/model_converters/fiber_to_mmvlg.py fiber_refcoco.pth fiber-refcoco.pth --source fine \\
        --config configs/fiber/fiber-release_swin-b_roberta-base_8xb2-20e_refcoco.py

The model is built from the config only for its tensor names and shapes: its text encoder needs RoBERTa's
tokenizer and ``config.json`` (the release configs set ``pretrained_weights=False``: no weight file is read).
"""
import argparse
import os.path as osp
import re
from collections import OrderedDict
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch

from mmvlg.utils.converters import (  # noqa: F401 (build_target_model, ConversionError: this tool's API)
    ConversionError,
    ConversionReport,
    build_target_model,
    save_converted_checkpoint,
)

SOURCES = ('coarse', 'fine')


class Target(NamedTuple):
    """Where a source tensor goes: ``key`` of the model, as part ``part`` of ``parts`` (concatenated along
    dim 0), after ``fn``."""
    key: str
    part: int = 0
    parts: int = 1
    fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None


# --------------------------------------------------------------------------------- shared Swin / RoBERTa rules
def unfold_reduction_order(weight: torch.Tensor) -> torch.Tensor:
    """Patch merging ``reduction.weight`` (out, 4C): the official Swin concatenates the 2x2 neighbours as
    (0,0), (1,0), (0,1), (1,1), each C wide; mmdet's ``nn.Unfold`` gives channel-major order with the
    neighbours (0,0), (0,1), (1,0), (1,1)."""
    out_channels, in_channels = weight.shape
    weight = weight.reshape(out_channels, 4, in_channels // 4)[:, [0, 2, 1, 3], :]
    return weight.transpose(1, 2).reshape(out_channels, in_channels)


def unfold_norm_order(weight: torch.Tensor) -> torch.Tensor:
    """Patch merging ``norm.weight``/``norm.bias`` (4C,), reordered as :func:`unfold_reduction_order`."""
    channels = weight.shape[0]
    return weight.reshape(4, channels // 4)[[0, 2, 1, 3], :].transpose(0, 1).reshape(channels)


class FusionLayout(NamedTuple):
    """The block/layer structure of the source, read from its keys."""
    stage_depths: Tuple[int, ...]  # Swin blocks per stage
    fused_blocks: Tuple[int, ...]  # global indices of the Swin blocks with image-to-text attention
    text_layers: int
    fused_layers: Tuple[int, ...]  # RoBERTa layers with text-to-image attention


def read_layout(state: Dict[str, torch.Tensor], swin: str, text: str) -> FusionLayout:
    """The Swin depths and the fused blocks/layers of a state dict with prefixes ``swin`` and ``text``."""
    depths: Dict[int, int] = {}
    fused_local = set()
    layers, fused_layers = set(), set()
    block_re = re.compile(re.escape(swin) + r'layers\.(\d+)\.blocks\.(\d+)\.(.+)')
    layer_re = re.compile(re.escape(text) + r'encoder\.layer\.(\d+)\.(.+)')
    for key in state:
        m = block_re.fullmatch(key)
        if m:
            stage, block = int(m.group(1)), int(m.group(2))
            depths[stage] = max(depths.get(stage, 0), block + 1)
            if m.group(3).startswith('attn.qkv_text_i2t.'):
                fused_local.add((stage, block))
        m = layer_re.fullmatch(key)
        if m:
            layers.add(int(m.group(1)))
            if m.group(2).startswith('crossattention_t2i.'):
                fused_layers.add(int(m.group(1)))
    stage_depths = tuple(depths.get(i, 0) for i in range(max(depths) + 1)) if depths else ()
    offsets = [sum(stage_depths[:i]) for i in range(len(stage_depths))]
    fused_blocks = tuple(sorted(offsets[s] + b for s, b in fused_local))
    return FusionLayout(stage_depths, fused_blocks, max(layers) + 1 if layers else 0, tuple(sorted(fused_layers)))


_WB = r'(weight|bias)'


def map_swin_key(rest: str, layout: FusionLayout, dst: str = 'backbone.') -> Tuple[Optional[Target], str]:
    """A key of the authors' Swin (official layout, without its prefix) -> mmvlg (``{dst}visual.*`` and
    ``{dst}i2t_attns.*``). Returns ``(target, '')``, ``(None, reason)`` (dropped) or ``(None, '')`` (unknown)."""
    vis = dst + 'visual.'
    m = re.fullmatch(rf'patch_embed\.proj\.{_WB}', rest)
    if m:
        return Target(f'{vis}patch_embed.projection.{m.group(1)}'), ''
    m = re.fullmatch(rf'patch_embed\.norm\.{_WB}', rest)
    if m:
        return Target(f'{vis}patch_embed.norm.{m.group(1)}'), ''
    if rest == 'absolute_pos_embed':
        return Target(f'{vis}absolute_pos_embed'), ''
    m = re.fullmatch(rf'norm\.{_WB}', rest)
    if m:  # the final LayerNorm of the last stage
        return Target(f'{vis}norm{len(layout.stage_depths) - 1}.{m.group(1)}'), ''
    m = re.fullmatch(rf'norm(\d)\.{_WB}', rest)  # per-stage output norms (detection Swin)
    if m:
        return Target(f'{vis}norm{m.group(1)}.{m.group(2)}'), ''
    m = re.fullmatch(rf'layers\.(\d+)\.downsample\.(reduction\.weight|norm\.{_WB})', rest)
    if m:
        fn = unfold_reduction_order if m.group(2) == 'reduction.weight' else unfold_norm_order
        return Target(f'{vis}stages.{m.group(1)}.downsample.{m.group(2)}', fn=fn), ''
    m = re.fullmatch(r'layers\.(\d+)\.blocks\.(\d+)\.(.+)', rest)
    if not m:
        return None, ''
    stage, block, sub = int(m.group(1)), int(m.group(2)), m.group(3)
    blk = f'{vis}stages.{stage}.blocks.{block}.'
    if sub == 'attn_mask':
        return None, 'Swin attention mask of the shifted windows (recomputed from the input size; not a weight)'
    rules = [(rf'norm([12])\.{_WB}', r'norm\1.\2'),
             (rf'attn\.(qkv|proj)\.{_WB}', r'attn.w_msa.\1.\2'),
             (r'attn\.relative_position_bias_table', r'attn.w_msa.relative_position_bias_table'),
             (r'attn\.relative_position_index', r'attn.w_msa.relative_position_index'),
             (rf'mlp\.fc1\.{_WB}', r'ffn.layers.0.0.\1'),
             (rf'mlp\.fc2\.{_WB}', r'ffn.layers.1.\1')]
    for pattern, repl in rules:
        if re.fullmatch(pattern, sub):
            return Target(blk + re.sub(pattern, repl, sub)), ''
    fusion = {'attn.qkv_i2t': 'q_proj', 'attn.qkv_text_i2t': 'kv_proj', 'attn.proj_i2t': 'out_proj',
              'attn.norm_i2t_i': 'query_norm'}
    m = re.fullmatch(rf'(attn\.(?:qkv_i2t|qkv_text_i2t|proj_i2t|norm_i2t_i))\.{_WB}|attn\.alpha_i2t', sub)
    if m:
        index = sum(layout.stage_depths[:stage]) + block
        if index not in layout.fused_blocks:
            return None, ''
        k = layout.fused_blocks.index(index)
        name = 'alpha' if sub == 'attn.alpha_i2t' else f'{fusion[m.group(1)]}.{m.group(2)}'
        return Target(f'{dst}i2t_attns.{k}.{name}'), ''
    return None, ''


def map_roberta_key(rest: str, layout: FusionLayout, dst: str = 'backbone.') -> Tuple[Optional[Target], str]:
    """A key of the authors' (fused) RoBERTa, without its prefix -> mmvlg (``{dst}language_model.model.*`` and
    ``{dst}t2i_attns.*``); returns as :func:`map_swin_key`."""
    lm = dst + 'language_model.model.'
    if rest == 'embeddings.position_ids':
        return None, 'RoBERTa position_ids buffer (recomputed, not a weight)'
    m = re.fullmatch(r'(embeddings\..+|pooler\.dense\.(?:weight|bias))', rest)
    if m:
        return Target(lm + rest), ''
    m = re.fullmatch(r'encoder\.layer\.(\d+)\.(.+)', rest)
    if not m:
        return None, ''
    layer, sub = int(m.group(1)), m.group(2)
    if re.fullmatch(r'(attention\.(self\.(query|key|value)|output\.(dense|LayerNorm))|intermediate\.dense|'
                    rf'output\.(dense|LayerNorm))\.{_WB}', sub):
        return Target(f'{lm}encoder.layer.{layer}.{sub}'), ''
    fused = layer in layout.fused_layers
    k = layout.fused_layers.index(layer) if fused else -1
    if sub == 'alpha_t2i':
        if not fused:
            return None, 'alpha_t2i of a RoBERTa layer without cross-attention (built, never used)'
        return Target(f'{dst}t2i_attns.{k}.alpha'), ''
    m = re.fullmatch(rf'crossattention_t2i\.(self\.query|self\.key|self\.value|output\.dense|output\.LayerNorm)'
                     rf'\.{_WB}', sub)
    if not m:
        return None, ''
    part, wb = m.group(1), m.group(2)
    if part == 'output.LayerNorm':
        return None, ('crossattention_t2i.output.LayerNorm: built, never applied (the authors\' cross-attention '
                      'output is not normalized)')
    attn = f'{dst}t2i_attns.{k}.'
    if part == 'self.query':
        return Target(f'{attn}q_proj.{wb}'), ''
    if part == 'output.dense':
        return Target(f'{attn}out_proj.{wb}'), ''
    return Target(f'{attn}kv_proj.{wb}', part=0 if part == 'self.key' else 1, parts=2), ''


# ---------------------------------------------------------------------------------------- coarse-grained model
_COARSE_DROPPED = (
    (re.compile(r'(image|text)_queue|(image|text)_input_queue|text_input_mask_queue|queue_(ptr|total)'),
     'ALBEF feature queue of the authors\' ITC training (mmvlg\'s ITC uses in-batch negatives; not a weight)'),
    (re.compile(r'nlvr2_classifier\..+'), 'NLVR2 classifier: mmvlg has no NLVR2 model'),
    (re.compile(r'cross_modal_att_layers\..+'),
     'captioning cross-attention projections: mmvlg has no captioning model'),
)
_COARSE_HEADS = [
    (rf'cross_modal_(text|image)_transform_itc\.{_WB}', r'itc_head.proj.\1_proj.\2'),
    (rf'cross_modal_(text|image)_pooler_itc\.dense\.{_WB}', r'itc_head.proj.\1_pooler.dense.\2'),
    (r'temp', r'itc_head.temperature'),
    (rf'cross_modal_(text|image)_transform\.{_WB}', r'pooler.\1_proj.\2'),
    (rf'cross_modal_(text|image)_pooler\.dense\.{_WB}', r'pooler.\1_pooler.dense.\2'),
    (rf'itm_score\.fc\.{_WB}', r'itm_head.fc.\1'),
    (rf'mlm_score\.transform\.dense\.{_WB}', r'mlm_head.dense.\1'),
    (rf'mlm_score\.transform\.LayerNorm\.{_WB}', r'mlm_head.norm.\1'),
    (r'mlm_score\.decoder\.weight', r'mlm_head.decoder.weight'),
    (r'mlm_score\.bias', r'mlm_head.bias'),
    (rf'vqa_classifier\.([013])\.{_WB}', r'vqa_head.classifier.\1.\2'),
]

# Targets that may be absent from the config's model: the source tensor is then dropped with this reason.
OPTIONAL_TARGETS = (
    (re.compile(r'^itc_head\.'), 'ITC head: the config\'s model has none'),
    (re.compile(r'^itm_head\.'), 'ITM head: the config\'s model has none'),
    (re.compile(r'^mlm_head\.'), 'MLM head: the config\'s model has none'),
    (re.compile(r'^vqa_head\.'), 'VQA classifier: the config\'s model has none'),
    (re.compile(r'^pooler\.'), 'fused-feature projections and poolers (ITM/MLM/VQA): the config\'s model has none'),
    (re.compile(r'language_model\.model\.pooler\.'), 'RoBERTa pooler, unused (the language model has no pooler)'),
)


def map_coarse_key(key: str, layout: FusionLayout) -> Tuple[Optional[Target], str]:
    """A key of the authors' coarse-grained ``FIBERTransformerSS`` -> mmvlg's FIBERCoarse/FIBERVQA."""
    if key.startswith('vit_model.'):
        return map_swin_key(key[len('vit_model.'):], layout)
    if key.startswith('text_transformer.'):
        return map_roberta_key(key[len('text_transformer.'):], layout)
    for pattern, reason in _COARSE_DROPPED:
        if pattern.fullmatch(key):
            return None, reason
    for pattern, repl in _COARSE_HEADS:
        if re.fullmatch(pattern, key):
            return Target(re.sub(pattern, repl, key)), ''
    return None, ''


def check_rank_output(state: Dict[str, torch.Tensor]) -> List[Tuple[str, str]]:
    """``rank_output`` must be row 1 of ``itm_score.fc`` (the authors make it a view of that row); returns the
    dropped ``(key, reason)`` pairs."""
    keys = [k for k in ('rank_output.weight', 'rank_output.bias') if k in state]
    if not keys:
        return []
    for k in keys:
        row = state.get('itm_score.fc.' + k.split('.')[-1])
        if row is None or not torch.equal(state[k].reshape(-1), row[1:].reshape(-1)):
            raise ConversionError(f'{k} is not row 1 of itm_score.fc.{k.split(".")[-1]} (the authors\' code makes '
                                  'it a view of that row): mmvlg\'s ITMHead.score could not reproduce it')
    return [(k, 'rank_output: a view of row 1 of itm_score.fc (ITMHead.score reads that row)') for k in keys]


# ------------------------------------------------------------------------------------------ fine-grained model
FINE_SWIN = 'fusion_backbone.backbone.body.'
FINE_TEXT = 'fusion_backbone.language_backbone.body.model.'
FINE_FPN = 'fusion_backbone.backbone.fpn.'
_FINE_HEAD = [  # the authors' VLDyHead (rpn.head) -> mmdet's GLIP head module (bbox_head.head)
    (rf'dyhead_tower\.(\d+)\.DyConv\.([012])\.(conv|bn)\.{_WB}', r'dyhead_tower.\1.dyconvs.\2.\3.\4'),
    (rf'dyhead_tower\.(\d+)\.AttnConv\.1\.{_WB}', r'dyhead_tower.\1.attnconv.1.\2'),
    (rf'dyhead_tower\.(\d+)\.relu\.fc\.([02])\.{_WB}', r'dyhead_tower.\1.relu.fc.\2.\3'),
    (rf'dyhead_tower\.(\d+)\.offset\.{_WB}', r'dyhead_tower.\1.offset.\2'),
    (rf'(bbox_pred|centerness|dot_product_projection_text)\.{_WB}', r'\1.\2'),
    (r'(log_scale|bias_lang|bias0)', r'\1'),
]


def map_fine_key(key: str, layout: FusionLayout, fpn_levels: Sequence[int]) -> Tuple[Optional[Target], str]:
    """A key of the authors' fine-grained ``GeneralizedVLRCNN`` (fusion in the backbone, VLDyHead) -> mmvlg's
    FIBER (``neck`` mmdet's FPN, ``bbox_head.head`` mmdet's GLIP head module without in-head fusion).

    Args:
        key (str): Key of the authors' state dict (without ``module.``).
        layout (FusionLayout): Swin/RoBERTa structure of the checkpoint.
        fpn_levels (list[int]): The indices ``n`` of the checkpoint's ``fpn_inner{n}`` convolutions, sorted.
    """
    if key.startswith(FINE_SWIN):
        return map_swin_key(key[len(FINE_SWIN):], layout)
    if key.startswith(FINE_TEXT):
        return map_roberta_key(key[len(FINE_TEXT):], layout)
    if key.startswith(FINE_FPN):
        rest = key[len(FINE_FPN):]
        m = re.fullmatch(rf'fpn_(inner|layer)(\d+)\.{_WB}', rest)
        if m and int(m.group(2)) in fpn_levels:
            kind = 'lateral_convs' if m.group(1) == 'inner' else 'fpn_convs'
            return Target(f'neck.{kind}.{fpn_levels.index(int(m.group(2)))}.conv.{m.group(3)}'), ''
        m = re.fullmatch(rf'top_blocks\.p([67])\.{_WB}', rest)
        if m:  # LastLevelP6P7 on the P5 output: mmdet's extra convolutions (add_extra_convs='on_output')
            return Target(f'neck.fpn_convs.{len(fpn_levels) + int(m.group(1)) - 6}.conv.{m.group(2)}'), ''
        return None, ''
    if key.startswith('rpn.head.'):
        rest = key[len('rpn.head.'):]
        m = re.fullmatch(r'scales\.(\d+)\.scale', rest)
        if m:  # a (1,) parameter in maskrcnn_benchmark's Scale, a scalar in mmcv's
            return Target(f'bbox_head.head.scales.{m.group(1)}.scale', fn=lambda t: t.reshape(())), ''
        if re.fullmatch(rf'cls_logits\.{_WB}', rest):
            return None, ('VLDyHead cls_logits: the fixed-class classifier, unused by the grounding model (its '
                          'scores are the dot-product logits)')
        for pattern, repl in _FINE_HEAD:
            if re.fullmatch(pattern, rest):
                return Target('bbox_head.head.' + re.sub(pattern, repl, rest)), ''
        return None, ''
    if key.startswith('rpn.anchor_generator.'):
        return None, 'anchor generator buffers (recomputed from the anchor settings)'
    return None, ''


# ------------------------------------------------------------------------------------------------- conversion
def map_state(state: Dict[str, torch.Tensor], source: str
              ) -> Tuple[Dict[str, List[Tuple[Target, str]]], List[Tuple[str, str]], List[str]]:
    """Map every source key: ``{target key: [(Target, source key), ...]}``, dropped ``(key, reason)`` pairs and
    the unmapped keys."""
    if source not in SOURCES:
        raise ValueError(f'source must be one of {SOURCES}, got {source!r}')
    if source == 'coarse':
        if not any(k.startswith('vit_model.') for k in state):
            raise ConversionError('the checkpoint has no vit_model.* keys: it is not a coarse-grained FIBER '
                                  'checkpoint (for a fine-grained one use --source fine)')
        layout = read_layout(state, 'vit_model.', 'text_transformer.')
        mapper = map_coarse_key
        dropped = check_rank_output(state)
        skip = {k for k, _ in dropped}
    else:
        layout = read_layout(state, FINE_SWIN, FINE_TEXT)
        if not layout.stage_depths:
            raise ConversionError(f'the checkpoint has no {FINE_SWIN}layers.* keys: it is not a fine-grained FIBER '
                                  'checkpoint (for a coarse-grained one use --source coarse)')
        fpn_levels = sorted({int(m.group(1)) for m in (re.fullmatch(re.escape(FINE_FPN) + r'fpn_inner(\d+)\..+', k)
                                                         for k in state) if m})

        def mapper(key, layout):
            return map_fine_key(key, layout, fpn_levels)

        dropped, skip = [], set()
    if len(layout.fused_blocks) != len(layout.fused_layers):
        raise ConversionError(f'the checkpoint fuses {len(layout.fused_blocks)} Swin blocks but '
                              f'{len(layout.fused_layers)} RoBERTa layers')
    mapped: Dict[str, List[Tuple[Target, str]]] = OrderedDict()
    unmapped = []
    for key in state:
        if key in skip:
            continue
        target, reason = mapper(key, layout)
        if target is None:
            (dropped.append((key, reason)) if reason else unmapped.append(key))
            continue
        mapped.setdefault(target.key, []).append((target, key))
    return mapped, dropped, unmapped


def convert_state_dict(state: Dict[str, torch.Tensor], source: str, target: Dict[str, torch.Tensor]
                       ) -> Tuple['OrderedDict[str, torch.Tensor]', List[Tuple[str, str]], List[str]]:
    """Rename the authors' state dict to the keys of an mmvlg model, checking every key and shape.

    Args:
        state (dict): The authors' state dict.
        source (str): ``'coarse'`` or ``'fine'``.
        target (dict): The mmvlg model's state dict (names and shapes to produce).

    Returns:
        tuple: The converted state dict (in the target's order), the dropped ``(key, reason)`` pairs and the
        added keys (BatchNorm ``num_batches_tracked`` counters).

    Raises:
        ConversionError: Naming every unmapped source key, every mapped key the model does not have, every
            shape mismatch and every model tensor the source does not provide.
    """
    mapped, dropped, unmapped = map_state(state, source)
    report = ConversionReport(OPTIONAL_TARGETS)
    report.dropped, report.unmapped = dropped, unmapped
    converted = OrderedDict()
    for new, sources in mapped.items():
        names = ' + '.join(src for _, src in sources)
        if not report.in_target([src for _, src in sources], new, target):
            continue
        parts = sorted(sources, key=lambda item: item[0].part)
        if len(parts) != parts[0][0].parts or [t.part for t, _ in parts] != list(range(parts[0][0].parts)):
            if len(parts) > parts[0][0].parts or len({t.part for t, _ in parts}) != len(parts):
                raise ConversionError(f'{names} all map to {new}')
            report.incomplete.append(f'{names} -> {new} (needs {parts[0][0].parts} parts)')
            continue
        values = [t.fn(state[src]) if t.fn is not None else state[src] for t, src in parts]
        value = values[0] if len(values) == 1 else torch.cat(values, dim=0)
        if not report.shape_matches(names, new, value, target):
            continue
        if new.endswith('relative_position_index') and not torch.equal(value, target[new]):
            report.mismatched.append(f'{names} -> {new}: the window indexing differs from the model\'s')
            continue
        converted[new] = value.to(target[new].dtype)
    converted, added = report.finish(converted, target)  # maskrcnn_benchmark's FrozenBatchNorm2d keeps no counter
    return converted, report.dropped, added


# ------------------------------------------------------------------------------------------------------ reading
def load_authors_checkpoint(path: str, source: str) -> Tuple[Dict[str, torch.Tensor], str]:
    """Read the authors' checkpoint with ``weights_only=True`` and return ``(state_dict, entry name)``.

    Coarse-grained (Lightning) files keep the weights in ``state_dict``; fine-grained (maskrcnn_benchmark) ones
    in ``model``, with the ``module.`` prefix of ``DistributedDataParallel``, which is removed.
    """
    from mmvlg.utils import safe_load_checkpoint
    from mmvlg.utils.checkpoint import UnsafeCheckpointError
    try:
        checkpoint = safe_load_checkpoint(path, map_location='cpu', restore=False)
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(
            f'{err}\nOnly the weights are needed: where the authors\' code is trusted and installed, extract them '
            "with torch.save({'state_dict': torch.load(src, weights_only=False)['state_dict']}, 'weights.ckpt') "
            'and convert that file.') from err
    entry = 'state_dict' if source == 'coarse' else 'model'
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get(entry), dict):
        kind = 'PyTorch Lightning' if source == 'coarse' else 'maskrcnn_benchmark'
        raise ConversionError(f'{path} is not a {kind} checkpoint of the authors\' code (no "{entry}" entry)')
    state = checkpoint[entry]
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ConversionError(f'{path}: "{entry}" holds non-tensor entries: {bad[:5]}')
    if all(k.startswith('module.') for k in state):
        state = OrderedDict((k[len('module.'):], v) for k, v in state.items())
    return state, entry


def convert_checkpoint(src: str, dst: str, source: str, model: torch.nn.Module, config: Optional[str] = None,
                       log: Callable[[str], None] = print) -> dict:
    """Convert ``src`` for ``model`` and write it to ``dst``; returns the written checkpoint.

    The result is loaded back into ``model`` with ``strict=True`` before it is written.
    """
    state, entry = load_authors_checkpoint(src, source)
    converted, dropped, added = convert_state_dict(state, source, model.state_dict())
    model.load_state_dict(converted, strict=True)
    meta = dict(converted_from=osp.basename(src), source=source, weights=entry, config=config)
    return save_converted_checkpoint(dst, converted, meta, dropped, added, len(state), log)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Convert a FIBER checkpoint of the authors\' code to mmvlg')
    parser.add_argument('src', help='the authors\' checkpoint (.ckpt of the coarse-grained code, .pth of the '
                        'fine-grained code)')
    parser.add_argument('dst', help='mmvlg checkpoint to write')
    parser.add_argument('--source', choices=SOURCES, required=True,
                        help='coarse: coarse_grained/ (PyTorch Lightning); fine: fine_grained/ (maskrcnn_benchmark)')
    parser.add_argument('--config', required=True, help='mmvlg config of the same architecture (names and shapes)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. '
                        'model.backbone.language_model.name_or_path=/models/roberta-base')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    model = build_target_model(args.config, args.cfg_options)
    convert_checkpoint(args.src, args.dst, args.source, model, config=args.config)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
