# Convert the authors' released X-VLM checkpoints (zengyan-97/X-VLM) to mmvlg checkpoints.
"""Convert a checkpoint of the authors' X-VLM code (zengyan-97/X-VLM) to mmvlg.

The authors save ``{'model': state_dict, 'config': ...}`` (``Pretrain.py``'s checkpointer and the fine-tuning
scripts alike; ``load_pretrained`` also reads a bare state dict). What the state dict holds depends on the task
that trained it; each task is one entry of :data:`TASKS`, detected from the keys (or given with ``--task``):

============== ============================================ ==========================================================
task           the authors' model (released checkpoints)    mmvlg model
============== ============================================ ==========================================================
``pretrain``   ``model_pretrain.XVLM`` (4M, 16M pre-        :class:`~mmvlg.models.XVLM` (ITC, ITM, MLM, box heads)
               training): ``text_encoder`` is a
               ``BertForMaskedLM`` (``text_encoder.bert.*``,
               ``text_encoder.cls.predictions.*``)
``itc_itm``    ``model_retrieval.XVLM`` (retrieval COCO /   :class:`~mmvlg.models.XVLM` with ITC and ITM heads
               Flickr30k, and weakly-supervised RefCOCO+,   (retrieval: ITC top-k re-ranked by ITM)
               ``Grounding.py``): ``text_encoder`` a
               ``BertModel`` (``text_encoder.*``)
``bbox``       ``model_bbox.XVLM`` (supervised RefCOCO+,    :class:`~mmvlg.models.XVLM` with only the box head (the
               ``Grounding_bbox.py``)                       same ``vision_encoder``/``language_model``/``bbox_head``)
``vqa``        ``model_vqa.XVLM`` (VQA v2; ``text_encoder`` :class:`~mmvlg.models.XVLMVQA` (its answer decoder
               a ``BertModel``), the answer decoder         :class:`~mmvlg.models.heads.AnswerGenerationHead`,
               ``text_decoder`` a ``BertLMHeadModel``       ``answer_head``)
``nlvr2``      ``model_nlvr.XVLM`` (NLVR2: ``cls_head.*``)  :class:`~mmvlg.models.XVLMNLVR` (cross layers duplicated
               and its text-assignment step                 per image: ``cross_attention.num_contexts=2``) and
               ``model_nlvr_pretrain.XVLM`` (``ta_head.*``, :class:`~mmvlg.models.XVLMNLVRPretrain` (``ta_head``,
               ``vision_proj.*``)                           ``itc_head``)
``captioning`` ``model_captioning.XVLM``                    mmvlg has no X-VLM captioning model (an error)
               (``text_decoder.*``, no ``text_encoder.*``)
============== ============================================ ==========================================================

Image encoders, read from the keys: the released Swin-B (``vision_encoder.layers.*``, the official Swin layout)
-> :class:`~mmvlg.models.backbones.XVLMSwin` (mmdet's ``SwinTransformer``, renamed by mmdet's own
``swin_converter``: patch-merging weights reordered for ``nn.Unfold``, the final ``norm`` -> ``norm3``), and the
paper's DeiT ViT (``vision_encoder.blocks.*``) -> :class:`~mmvlg.models.backbones.XVLMViT`, whose parameter names
are DeiT's. The authors' CLIP-ViT option (``use_clip_vit``: ``vision_encoder.pos_embed.weight``) has no mmvlg
encoder and is an error. BERT: ``embeddings``/``encoder.layer.N.{attention,intermediate,output}`` -> the
Hugging Face BERT of :class:`~mmvlg.models.language_models.HFTextEncoder` (``language_model.model.*``),
``encoder.layer.N.crossattention.*`` -> its cross-attention blocks ``language_model.cross_attns.N.*``. Heads:
``vision_proj``/``text_proj``/``temp`` -> ``itc_head.proj.image_proj``/``text_proj``/``itc_head.temperature``;
``itm_head.{0,1,3}`` and ``bbox_head.{0,1,3}`` (the authors' ``build_mlp``: Linear, LayerNorm, GELU, Linear) ->
``itm_head.fc.*`` and ``bbox_head.bbox_embed.*`` (:class:`~mmvlg.models.layers.MLPBlock`); the MLM head
``cls.predictions.{transform.dense, transform.LayerNorm, decoder, bias}`` -> ``mlm_head.{dense, norm, decoder,
bias}``.

VQA: the answer decoder ``text_decoder.bert.*`` is a BERT like the text encoder and maps by the same rules into
``answer_head.decoder.*`` (its layer ``N``'s ``crossattention`` -> ``answer_head.decoder.cross_attns.N``, reading the
question states), its prediction head ``text_decoder.cls.predictions.*`` -> ``answer_head.lm_head.*`` (the output
matrix tied to the decoder's own word embeddings, checked equal). NLVR2: the authors number the duplicated cross
layers as mmvlg does (layer ``f + 2k + j``: copy ``j`` of cross layer ``k``), so ``text_encoder.encoder.layer.N`` ->
``language_model.model.encoder.layer.N`` and ``crossattention`` -> ``language_model.cross_attns.N``; the key and
value projections of the two copies are one module in mmvlg (shared) and one parameter in the authors' model
(``share_cross_attention``), so both checkpoint keys are mapped and checked equal; ``cls_head.{0,1,3}`` (their
``build_mlp``) -> ``cls_head.{0,1,3}`` (MLPBlock). The text-assignment step: ``ta_head`` -> ``ta_head``,
``vision_proj`` -> ``itc_head.proj.image_proj``; the authors' model has no ITC text projection and a fixed
temperature (0.07), XVLMNLVRPretrain reads only the image embedding: ``itc_head.proj.text_proj.*`` and
``itc_head.temperature`` keep the model's own values, listed in ``meta['kept_keys']`` (and printed). Convert the
text-assignment checkpoint with the text-assignment config; the NLVR2 fine-tuning config then loads it
(``load_from``: ``ta_head``/``itc_head`` are left out, ``cls_head`` starts fresh, as the authors'
``--load_nlvr_pretrain``).

Every source key is mapped or dropped for a stated reason, listed in the output's ``meta['dropped_keys']`` (and
printed):

* buffers that are recomputed: BERT's ``embeddings.position_ids``, Swin's ``attn_mask`` (Swin's
  ``relative_position_index`` is mapped and checked to be the model's own: a different window is an error);
* ``cls.predictions.decoder.bias``: the same tensor as ``cls.predictions.bias`` (checked);
* heads the config's model lacks (e.g. the MLM and box heads of a pre-trained checkpoint converted for a
  retrieval config; only when the model has no tensor of that head at all), and BERT's pooler when the language
  model has none.

Tensors that are one parameter in the model (the MLM decoder tied to the word embeddings) must be equal in the
checkpoint (they are in the authors': ``BertForMaskedLM`` ties them). Anything else without counterpart, a tensor
whose shape differs from the model's, or a model tensor the checkpoint does not provide is an error
(:class:`ConversionError`) naming the keys. The checks, the model building and the (atomic) writing are shared by
every converter (:mod:`mmvlg.utils.converters`); the key rules are this file's.

Convert a checkpoint into the config of its own architecture (the pre-trained Swin-B at 224 px / window 7, the
fine-tuned ones at their resolution, e.g. window 12 at 384 px). A fine-tuning config at another resolution then
loads the converted pre-trained checkpoint (``load_from`` / ``init_cfg``) and resizes the relative-position
tables (XVLMSwin) or the position embedding (XVLMViT) itself, bicubically; the authors resize the tables with
BEiT's geometric-progression interpolation instead, so a fine-tuning started here begins from slightly different
tables than theirs (the released fine-tuned checkpoints carry their own tables and are unaffected).

Usage (the released 4M / 16M pre-trained Swin-B models; a fine-tuned one with the config of its task, at its
resolution, e.g. a retrieval config at 384 px / window 12; ``--task`` when the keys alone should not decide):
    python tools/model_converters/xvlm_to_mmvlg.py 4m_base_model_state_step_199999.th xvlm-base_4m.pth \\
        --config configs/xvlm/xvlm_swin-b_bert-base_8xb128-205k_4m.py \\
        --cfg-options model.language_model.name_or_path=/models/bert-base-uncased \\
                      model.language_model.pretrained_weights=False
    python tools/model_converters/xvlm_to_mmvlg.py 16m_base_model_state_step_199999.th xvlm-base_16m.pth \\
        --config configs/xvlm/xvlm_swin-b_bert-base_24xb128-201k_16m.py --cfg-options ...
    python tools/model_converters/xvlm_to_mmvlg.py vqa_model_state.th xvlm-base_vqa.pth \\
        --config configs/xvlm/xvlm-vqa_swin-b_bert-base_8xb24-10e_vqav2.py --cfg-options ...
    python tools/model_converters/xvlm_to_mmvlg.py nlvr_model_state.th xvlm-base_nlvr2.pth \\
        --config configs/xvlm/xvlm-nlvr2_swin-b_bert-base_8xb10-10e_nlvr2.py --cfg-options ...

The model is built from the config only for its tensor names and shapes: its text encoder needs BERT's
tokenizer and ``config.json`` (set ``model.language_model.pretrained_weights=False`` and no weight file is read).
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
    fill_tied_tensors,
    keep_model_tensors,
    load_weights_entry,
    save_converted_checkpoint,
)

_WB = r'(weight|bias)'
VISION = 'vision_encoder.'
LM = 'language_model.'

# A rule: (pattern matched with re.fullmatch on the source key, replacement (re.sub template) or None to drop,
# the reason of the drop).
Rule = Tuple[str, Optional[str], str]


class Task(NamedTuple):
    """One kind of the authors' checkpoints: how to recognize it and its rules."""
    description: str
    text_prefix: Optional[str]  # the prefix of the authors' BERT (None: unsupported task)
    rules: Tuple[Rule, ...]     # the task's own rules, tried before the shared ones
    detect: Callable[[Sequence[str]], bool]
    unsupported: str = ''       # why mmvlg cannot convert it (yet)
    # (pattern matched with re.fullmatch on a model key, reason): model tensors that the authors' model of the task
    # does not have and the mmvlg model does not use; when the checkpoint lacks them they keep the model's values
    kept_targets: Tuple[Tuple[str, str], ...] = ()


def _has(prefix: str) -> Callable[[Sequence[str]], bool]:
    return lambda keys: any(k.startswith(prefix) for k in keys)


# ------------------------------------------------------------------------------------------------- the rules
def bert_rules(prefix: str, target: str = LM) -> Tuple[Rule, ...]:
    """The authors' BERT with cross-attention (``models/xbert.py``) under ``prefix`` -> the HFTextEncoder under
    ``target`` (the language model; the VQA answer decoder ``answer_head.decoder.``)."""
    p = re.escape(prefix)
    return (
        (p + r'embeddings\.position_ids', None, 'BERT position_ids buffer (recomputed, not a weight)'),
        (p + rf'embeddings\.((?:word|position|token_type)_embeddings\.weight|LayerNorm\.{_WB})',
         target + r'model.embeddings.\1', ''),
        (p + r'encoder\.layer\.(\d+)\.crossattention\.(self\.(?:query|key|value)|output\.(?:dense|LayerNorm))\.'
         + _WB, target + r'cross_attns.\1.\2.\3', ''),
        (p + r'encoder\.layer\.(\d+)\.(attention\.(?:self\.(?:query|key|value)|output\.(?:dense|LayerNorm))|'
         rf'intermediate\.dense|output\.(?:dense|LayerNorm))\.{_WB}', target + r'model.encoder.layer.\1.\2.\3', ''),
        (p + rf'pooler\.dense\.{_WB}', target + r'model.pooler.dense.\1', ''),
    )


def prediction_head_rules(prefix: str, target: str) -> Tuple[Rule, ...]:
    """BERT's ``BertLMPredictionHead`` (``<prefix>predictions.*``) -> an :class:`~mmvlg.models.heads.MLMHead` under
    ``target``; its ``decoder.bias`` is the same tensor as its ``bias`` (checked by :func:`_check_lm_biases`)."""
    p = re.escape(prefix) + r'predictions\.'
    return (
        (p + rf'transform\.dense\.{_WB}', target + r'dense.\1', ''),
        (p + rf'transform\.LayerNorm\.{_WB}', target + r'norm.\1', ''),
        (p + r'decoder\.weight', target + 'decoder.weight', ''),
        (p + r'bias', target + 'bias', ''),
        (p + r'decoder\.bias', None,
         f'{prefix}predictions.decoder.bias: the same tensor as {prefix}predictions.bias ({target}bias)'),
    )


# the heads that predict words: BertForMaskedLM's (pre-training) and BertLMHeadModel's (the VQA answer decoder)
LM_HEAD_PREFIXES = ('text_encoder.cls.', 'text_decoder.cls.')
MLM_RULES: Tuple[Rule, ...] = prediction_head_rules('text_encoder.cls.', 'mlm_head.')
# The VQA answer decoder (model_vqa.XVLM.text_decoder, a BertLMHeadModel: causal self-attention, cross-attention to
# the question states in every layer) -> AnswerGenerationHead (its decoder and the LM head tied to its embeddings).
VQA_RULES: Tuple[Rule, ...] = (bert_rules('text_decoder.bert.', 'answer_head.decoder.')
                               + prediction_head_rules('text_decoder.cls.', 'answer_head.lm_head.'))
ITC_RULES: Tuple[Rule, ...] = (
    (rf'vision_proj\.{_WB}', r'itc_head.proj.image_proj.\1', ''),
    (rf'text_proj\.{_WB}', r'itc_head.proj.text_proj.\1', ''),
    (r'temp', r'itc_head.temperature', ''),
)
ITM_RULES: Tuple[Rule, ...] = ((rf'itm_head\.([013])\.{_WB}', r'itm_head.fc.\1.\2', ''), )
BBOX_RULES: Tuple[Rule, ...] = ((rf'bbox_head\.([013])\.{_WB}', r'bbox_head.bbox_embed.\1.\2', ''), )
# NLVR2 (model_nlvr.XVLM: the build_mlp classifier, as mmvlg's MLPBlock) and its text-assignment step
# (model_nlvr_pretrain.XVLM: a Linear ta_head and the ITC image projection alone, read for the hard negatives)
NLVR_RULES: Tuple[Rule, ...] = (
    (rf'cls_head\.([013])\.{_WB}', r'cls_head.\1.\2', ''),
    (rf'ta_head\.{_WB}', r'ta_head.\1', ''),
    ITC_RULES[0],
)
NLVR_KEPT: Tuple[Tuple[str, str], ...] = (
    (r'itc_head\.(proj\.text_proj\.(weight|bias)|temperature)',
     'the authors\' text-assignment model has only the ITC image projection (vision_proj) and a fixed temperature; '
     'XVLMNLVRPretrain reads only itc_head.embed_image (its temperature is model.temperature): the model\'s own '
     'values are kept'),
)

# The paper's DeiT ViT: XVLMViT's names are DeiT's.
VIT_RULES: Tuple[Rule, ...] = (
    (r'vision_encoder\.(cls_token|pos_embed)', VISION + r'\1', ''),
    (rf'vision_encoder\.(patch_embed\.proj|norm)\.{_WB}', VISION + r'\1.\2', ''),
    (rf'vision_encoder\.blocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.{_WB}',
     VISION + r'blocks.\1.\2.\3', ''),
)

TASKS: 'OrderedDict[str, Task]' = OrderedDict(
    # checked in this order by detect_task
    captioning=Task('captioning (model_captioning.XVLM: a text_decoder.* and no text encoder)', None, (),
                    lambda keys: _has('text_decoder.')(keys) and not _has('text_encoder.')(keys),
                    'mmvlg has no X-VLM captioning model'),
    vqa=Task('VQA (model_vqa.XVLM: the answer decoder text_decoder.*)', 'text_encoder.', VQA_RULES,
             _has('text_decoder.')),
    nlvr2=Task('NLVR2 (model_nlvr.XVLM: cls_head.*; its text-assignment pre-training: ta_head.*)', 'text_encoder.',
               NLVR_RULES, lambda keys: _has('cls_head.')(keys) or _has('ta_head.')(keys), kept_targets=NLVR_KEPT),
    pretrain=Task('pre-training (model_pretrain.XVLM: BertForMaskedLM text encoder, ITC/ITM/MLM/box heads)',
                  'text_encoder.bert.', MLM_RULES + ITC_RULES + ITM_RULES + BBOX_RULES,
                  lambda keys: _has('text_encoder.bert.')(keys) or _has('text_encoder.cls.')(keys)),
    itc_itm=Task('ITC/ITM fine-tuning (model_retrieval.XVLM: retrieval COCO/Flickr30k, weakly-supervised '
                 'grounding)', 'text_encoder.', ITC_RULES + ITM_RULES,
                 lambda keys: _has('itm_head.')(keys) or _has('vision_proj.')(keys)),
    bbox=Task('supervised grounding (model_bbox.XVLM: the box head)', 'text_encoder.', BBOX_RULES,
              _has('bbox_head.')),
)

# Targets that may be absent from the config's model: the source tensor is then dropped with this reason, when the
# model has no key of the pattern at all (a head it has, of another depth or layout, is an error naming the keys).
OPTIONAL_TARGETS = (
    (re.compile(r'^itc_head\.'), 'ITC projections and temperature: the config\'s model has no itc_head'),
    (re.compile(r'^itm_head\.'), 'ITM head: the config\'s model has no itm_head'),
    (re.compile(r'^mlm_head\.'), 'MLM head: the config\'s model has no mlm_head'),
    (re.compile(r'^bbox_head\.'), 'box head: the config\'s model has no bbox_head'),
    (re.compile(r'^answer_head\.'), 'VQA answer decoder: the config\'s model has no answer_head'),
    (re.compile(r'^language_model\.model\.pooler\.'), 'BERT pooler, unused by X-VLM (the language model has none)'),
)


def detect_task(keys: Sequence[str]) -> str:
    """The task of a state dict's keys (see :data:`TASKS`)."""
    for name, task in TASKS.items():
        if task.detect(keys):
            return name
    raise ConversionError('cannot tell which X-VLM model the checkpoint is (no text_encoder.bert.*, itm_head.*, '
                          'vision_proj.*, bbox_head.*, text_decoder.*, cls_head.* nor ta_head.* keys); is it an '
                          'X-VLM checkpoint of the authors\' code?')


def vision_kind(keys: Sequence[str]) -> str:
    """``'swin'`` (the released Swin-B) or ``'vit'`` (the paper's DeiT ViT)."""
    if any(k in ('vision_encoder.pos_embed.weight', 'vision_encoder.position_ids') for k in keys):
        raise ConversionError('the checkpoint\'s image encoder is the authors\' CLIP ViT (use_clip_vit: '
                              'vision_encoder.pos_embed.weight): mmvlg has no such encoder; X-VLM\'s are XVLMSwin '
                              '(Swin-B) and XVLMViT (DeiT)')
    if _has(VISION + 'layers.')(keys):
        return 'swin'
    if _has(VISION + 'blocks.')(keys):
        return 'vit'
    raise ConversionError('the checkpoint has no vision_encoder.layers.* (Swin) nor vision_encoder.blocks.* (ViT) '
                          'keys: it is not an X-VLM checkpoint of the authors\' code')


class Mapped(NamedTuple):
    key: str
    value: torch.Tensor


def map_swin_key(key: str, value: torch.Tensor, last_stage: int) -> Tuple[Optional[Mapped], str]:
    """A ``vision_encoder.*`` key of the authors' Swin (official layout) -> XVLMSwin (mmdet's layout), with
    mmdet's own ``swin_converter`` (which also reorders the patch-merging weights)."""
    from mmdet.models.backbones.swin import swin_converter
    rest = key[len(VISION):]
    if re.fullmatch(r'layers\.\d+\.blocks\.\d+\.attn_mask', rest):
        return None, 'Swin attention mask of the shifted windows (recomputed from the input size; not a weight)'
    m = re.fullmatch(rf'norm\.{_WB}', rest)
    if m:  # the final LayerNorm of the last stage
        return Mapped(f'{VISION}norm{last_stage}.{m.group(1)}', value), ''
    if not re.fullmatch(rf'patch_embed\.(proj|norm)\.{_WB}|layers\.\d+\.downsample\.(reduction\.weight|norm\.{_WB})|'
                        rf'layers\.\d+\.blocks\.\d+\.(norm[12]\.{_WB}|attn\.(qkv|proj)\.{_WB}|'
                        rf'attn\.relative_position_(bias_table|index)|mlp\.fc[12]\.{_WB})', rest):
        return None, ''
    (new, new_value), = swin_converter({rest: value}).items()
    return Mapped(VISION + new[len('backbone.'):], new_value), ''


def map_key(key: str, value: torch.Tensor, task: Task, vision: str, last_stage: int
            ) -> Tuple[Optional[Mapped], str]:
    """One source key -> ``(Mapped, '')``, ``(None, reason)`` (dropped) or ``(None, '')`` (unknown)."""
    if key.startswith(VISION):
        if vision == 'swin':
            return map_swin_key(key, value, last_stage)
        rules = VIT_RULES
    else:
        rules = task.rules + bert_rules(task.text_prefix)
    for pattern, repl, reason in rules:
        if re.fullmatch(pattern, key):
            if repl is None:
                return None, reason
            return Mapped(re.sub(pattern, repl, key), value), ''
    return None, ''


# ------------------------------------------------------------------------------------------------- conversion
def map_state(state: Dict[str, torch.Tensor], task: Optional[str] = None
              ) -> Tuple[str, 'OrderedDict[str, Tuple[str, torch.Tensor]]', List[Tuple[str, str]], List[str]]:
    """Map every source key.

    Returns:
        tuple: the task, ``{model key: (source key, tensor)}``, the dropped ``(key, reason)`` pairs and the
        unmapped keys.

    Raises:
        ConversionError: An unknown or unsupported task, an unsupported image encoder, or two source keys
            mapped to one model key.
    """
    keys = list(state)
    task = task or detect_task(keys)
    if task not in TASKS:
        raise ValueError(f'task must be one of {list(TASKS)}, got {task!r}')
    spec = TASKS[task]
    if spec.unsupported:
        raise ConversionError(f'the checkpoint is an X-VLM {spec.description} checkpoint: {spec.unsupported}')
    vision = vision_kind(keys)
    stages = {int(m.group(1)) for m in (re.match(re.escape(VISION) + r'layers\.(\d+)\.', k) for k in keys) if m}
    last_stage = max(stages) if stages else 0
    mapped: 'OrderedDict[str, Tuple[str, torch.Tensor]]' = OrderedDict()
    dropped, unmapped = [], []
    for key, value in state.items():
        target, reason = map_key(key, value, spec, vision, last_stage)
        if target is None:
            (dropped.append((key, reason)) if reason else unmapped.append(key))
            continue
        if target.key in mapped:
            raise ConversionError(f'{mapped[target.key][0]} and {key} both map to {target.key}')
        mapped[target.key] = (key, target.value)
    return task, mapped, dropped, unmapped


RESOLUTION_HINT = (' (convert into a config of the checkpoint\'s own image size and window; a config at another '
                   'one resizes the tables / position embedding when it loads the converted checkpoint)')


def _check_lm_biases(state: Dict[str, torch.Tensor]) -> None:
    for prefix in LM_HEAD_PREFIXES:
        a, b = f'{prefix}predictions.bias', f'{prefix}predictions.decoder.bias'
        if b in state and (a not in state or not torch.equal(state[a], state[b])):
            raise ConversionError(f'{b} is not {a} (the authors\' BertLMPredictionHead ties them): mmvlg\'s MLMHead '
                                  'has one bias')


def convert_state_dict(state: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor], task: Optional[str] = None
                       ) -> Tuple['OrderedDict[str, torch.Tensor]', List[Tuple[str, str]], List[str], str,
                                  List[Tuple[str, str]]]:
    """Rename the authors' state dict to the keys of an mmvlg model, checking every key and shape.

    Args:
        state (dict): The authors' state dict.
        target (dict): The mmvlg model's state dict (names and shapes to produce).
        task (str, optional): A key of :data:`TASKS`; detected from the keys by default.

    Returns:
        tuple: The converted state dict (in the target's order), the dropped ``(key, reason)`` pairs, the added
        keys (none for X-VLM, whose models have no BatchNorm), the task and the kept ``(model key, reason)`` pairs:
        the model tensors of the task's ``kept_targets`` that the checkpoint lacks, given the model's own values
        (``target``'s).

    Raises:
        ConversionError: Naming every unmapped source key, every mapped key the model does not have, every
            shape mismatch, every tied tensor pair that differs and every model tensor the source does not provide.
    """
    _check_lm_biases(state)
    task, mapped, dropped, unmapped = map_state(state, task)
    report = ConversionReport([(p, why) for p, why in OPTIONAL_TARGETS if not any(p.search(k) for k in target)])
    report.dropped, report.unmapped = dropped, unmapped
    converted = OrderedDict()
    for new, (src, value) in mapped.items():
        if not report.in_target(src, new, target) or not report.shape_matches(src, new, value, target):
            continue
        if new.endswith('relative_position_index') and not torch.equal(value, target[new]):
            report.mismatched.append(f'{src} -> {new}: the window indexing differs from the model\'s')
            continue
        converted[new] = value.to(target[new].dtype)
    fill_tied_tensors(converted, target, {k: src for k, (src, _) in mapped.items()}, report)
    report.mismatched = [m + RESOLUTION_HINT if re.search(r'-> \S*(relative_position_bias_table|pos_embed):', m)
                         else m for m in report.mismatched]
    kept = keep_model_tensors(converted, target, TASKS[task].kept_targets)
    converted, added = report.finish(converted, target)
    return converted, report.dropped, added, task, kept


# ------------------------------------------------------------------------------------------------------ reading
def load_authors_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], str]:
    """Read the authors' checkpoint with ``weights_only=True`` and return ``(state_dict, entry name)``.

    The weights are the ``model`` entry (``{'model': ..., 'config': ...}``), or the file itself when it is a bare
    state dict (as the authors' ``load_pretrained`` reads it); a ``module.`` prefix of ``DistributedDataParallel``
    is removed.
    """
    return load_weights_entry(path, 'model', 'X-VLM', '{"model": state_dict}')


def convert_checkpoint(src: str, dst: str, model: torch.nn.Module, task: Optional[str] = None,
                       config: Optional[str] = None, log: Callable[[str], None] = print) -> dict:
    """Convert ``src`` for ``model`` and write it to ``dst`` (atomically); returns the written checkpoint.

    The result is loaded back into ``model`` with ``strict=True`` before it is written.
    """
    state, entry = load_authors_checkpoint(src)
    converted, dropped, added, task, kept = convert_state_dict(state, model.state_dict(), task)
    model.load_state_dict(converted, strict=True)
    meta = dict(converted_from=osp.basename(src), source=f'X-VLM {task}', task=task, weights=entry, config=config,
                kept_keys=[f'{k}: {why}' for k, why in kept])
    reasons: Dict[str, List[str]] = {}
    for key, why in kept:
        reasons.setdefault(why, []).append(key)
    for why, keys in reasons.items():
        log(f'kept the model\'s own {len(keys)} tensors ({", ".join(keys)}): {why}')
    return save_converted_checkpoint(dst, converted, meta, dropped, added, len(state), log)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Convert an X-VLM checkpoint of the authors\' code to mmvlg')
    parser.add_argument('src', help='the authors\' checkpoint ({"model": state_dict, "config": ...} or a state dict)')
    parser.add_argument('dst', help='mmvlg checkpoint to write')
    parser.add_argument('--config', required=True, help='mmvlg config of the same architecture (names and shapes)')
    parser.add_argument('--task', choices=list(TASKS), default=None,
                        help='the authors\' model that saved it (default: detected from the keys)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. '
                        'model.language_model.name_or_path=/models/bert-base-uncased')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    model = build_target_model(args.config, args.cfg_options)
    convert_checkpoint(args.src, args.dst, model, task=args.task, config=args.config)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
