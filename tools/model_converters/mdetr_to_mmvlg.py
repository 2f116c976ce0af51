# Convert the authors' released MDETR and SiRi checkpoints to mmvlg checkpoints.
"""Convert a checkpoint of the authors' MDETR (ashkamath/mdetr) or SiRi (qumengxue/siri-vg) code to mmvlg.

The authors save ``{'model': state_dict, 'model_ema': state_dict or None, 'optimizer': ..., 'epoch': ...,
'args': argparse.Namespace}``. This tool reads the file with ``torch.load(weights_only=True)`` (only
``argparse.Namespace`` is allow-listed besides torch's own types), takes ``model`` or, with ``--use-ema``, the
exponential moving average ``model_ema`` (what the authors evaluate: ``--ema --eval``), renames every tensor to
the mmvlg model built from ``--config`` and writes ``{'meta': ..., 'state_dict': ...}``, which ``tools/test.py``,
``load_from`` and ``init_cfg=dict(type='Pretrained', checkpoint=...)`` accept.

Every source key is either mapped or dropped for a stated reason, listed in the output's
``meta['dropped_keys']`` (and printed):

* the second copy of everything except the decoder in multi-task SiRi checkpoints: the authors clone the
  whole transformer (text encoder, resizer, encoder, decoder) per decoder but encode with ``transformer.0`` only;
* SiRi's ``sent_pos_attn`` (built, never called) and, with one decoder, ``pos_trans_norm``;
* the contrastive-alignment projections when the config's head has none, the RoBERTa pooler when the
  language model has none, and RoBERTa's ``position_ids`` buffer of old ``transformers`` versions.

Anything else that has no counterpart (e.g. a QA head, the contrastive ``CLS`` token), a tensor whose shape
differs from the model's, or a model tensor that the checkpoint does not provide is an error that names the
keys. The only tensors added are BatchNorm's ``num_batches_tracked`` counters (the authors' frozen BatchNorm
has none), listed in ``meta['added_keys']``.
These checks, the model building and the writing are shared by every converter (:mod:`mmvlg.utils.converters`);
the key rules are this file's.

Usage:
    python tools/model_converters/mdetr_to_mmvlg.py refcoco_resnet101_checkpoint.pth mdetr_r101_refcoco.pth \\
        --source mdetr --use-ema --config configs/mdetr/mdetr_r101_roberta-base_2xb4-5e_refcoco.py \\
        --cfg-options model.language_model.name_or_path=/models/roberta-base
    python tools/model_converters/mdetr_to_mmvlg.py refcocog_2d.pth siri-mt_refcocog.pth --source siri --use-ema \\
        --config configs/siri/siri-mt-release_mdetr-star_r101_roberta-base_4xb18-35e-5x30e_refcocog.py

The model is built from the config only for its tensor names and shapes: its text encoder needs RoBERTa's
tokenizer and ``config.json`` (``model.language_model.pretrained_weights=False`` avoids reading the weights).
"""
import argparse
import os.path as osp
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from mmvlg.utils.converters import (  # noqa: F401 (build_target_model, ConversionError: this tool's API)
    ConversionError,
    ConversionReport,
    build_target_model,
    save_converted_checkpoint,
)

SOURCES = ('mdetr', 'siri')

# What the authors' RoBERTa/contrastive tensors become; dropped with a reason when the target has no such tensor.
OPTIONAL_TARGETS = (
    (re.compile(r'^language_model\.model\.pooler\.'), 'RoBERTa pooler, unused (the language model has no pooler)'),
    (re.compile(r'^language_model\.model\.embeddings\.position_ids$'),
     'RoBERTa position_ids buffer of old transformers versions (recomputed, not a weight)'),
    (re.compile(r'^bbox_head\.contrastive_align_projection_'),
     'contrastive-alignment projection, unused at inference (the config\'s head has no contrastive_align)'),
)


def _sub(rules: Sequence[Tuple[str, str]], key: str) -> Optional[str]:
    for pattern, repl in rules:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, repl, key)
    return None


_ATTN = r'(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)'
_WB = r'(weight|bias)'
# The authors' DETR transformer (models/transformer.py) -> VLTransformerEncoder / DetrTransformerDecoderSDPA.
_ENCODER_RULES = [
    (rf'encoder\.layers\.(\d+)\.self_attn\.{_ATTN}', r'encoder.layers.\1.self_attn.\2'),
    (rf'encoder\.layers\.(\d+)\.linear([12])\.{_WB}', r'encoder.layers.\1.ffn.linear\2.\3'),
    (rf'encoder\.layers\.(\d+)\.norm([12])\.{_WB}', r'encoder.layers.\1.norm\2.\3'),
]
_DECODER_RULES = [
    (rf'decoder\.layers\.(\d+)\.self_attn\.{_ATTN}', r'decoder.layers.\1.self_attn.\2'),
    (rf'decoder\.layers\.(\d+)\.cross_attn_image\.{_ATTN}', r'decoder.layers.\1.cross_attn.\2'),
    (rf'decoder\.layers\.(\d+)\.linear([12])\.{_WB}', r'decoder.layers.\1.ffn.linear\2.\3'),
    # the authors' decoder layer has norm1 (self-attention), norm3 (cross-attention), norm4 (FFN)
    (rf'decoder\.layers\.(\d+)\.norm1\.{_WB}', r'decoder.layers.\1.norm1.\2'),
    (rf'decoder\.layers\.(\d+)\.norm3\.{_WB}', r'decoder.layers.\1.norm2.\2'),
    (rf'decoder\.layers\.(\d+)\.norm4\.{_WB}', r'decoder.layers.\1.norm3.\2'),
    (rf'decoder\.norm\.{_WB}', r'decoder.norm.\1'),
]
_TEXT_RULES = [
    (r'text_encoder\.(.+)', r'language_model.model.\1'),
    (rf'resizer\.(fc|layer_norm)\.{_WB}', r'text_proj.\1.\2'),
]
_HEAD_RULES = [
    (rf'class_embed\.{_WB}', r'class_embed.\1'),
    (rf'bbox_embed\.layers\.(\d+)\.{_WB}', r'bbox_embed.layers.\1.\2'),
]


def map_key(key: str, source: str, multi_decoder: bool, timm_backbone: bool) -> Tuple[Optional[str], str]:
    """The mmvlg name of one of the authors' keys.

    Args:
        key (str): Key of the authors' state dict.
        source (str): ``'mdetr'`` or ``'siri'``.
        multi_decoder (bool): The SiRi checkpoint has a second decoder (``transformer.1.*``).
        timm_backbone (bool): The target backbone is :class:`~mmvlg.models.backbones.TimmBackbone` (EfficientNet)
            rather than mmdet's ResNet.

    Returns:
        tuple: ``(new_key, '')`` when mapped, ``(None, reason)`` when dropped on purpose, ``(None, '')`` when
        the key has no counterpart.
    """
    m = re.fullmatch(r'backbone\.0\.body\.(.+)', key)
    if m:
        return ('backbone.body.' if timm_backbone else 'backbone.') + m.group(1), ''
    top = _sub([(rf'input_proj\.{_WB}', r'neck.input_proj.\1'),
                (rf'add_feature\.([01])\.{_WB}', r'neck.add_feature.\1.\2'),
                (r'query_embed\.weight', r'query_embedding.weight'),
                (rf'contrastive_align_projection_(image|text)\.{_WB}',
                 r'bbox_head.contrastive_align_projection_\1.\2')], key)
    if top is not None:
        return top, ''
    if source == 'mdetr':
        m = re.fullmatch(r'transformer\.(.+)', key)
        if m:
            return _sub(_ENCODER_RULES + _DECODER_RULES + _TEXT_RULES, m.group(1)), ''
        head = _sub(_HEAD_RULES, key)
        return ('bbox_head.' + head if head else None), ''
    # SiRi: transformer, class_embed and bbox_embed are ModuleLists with one entry per decoder (cascade_num)
    m = re.fullmatch(r'transformer\.(\d+)\.(.+)', key)
    if m:
        index, rest = int(m.group(1)), m.group(2)
        if rest.startswith('sent_pos_attn.'):
            return None, 'SiRi sent_pos_attn: built but never called (its call is commented out)'
        if index == 0:
            return _sub(_ENCODER_RULES + _DECODER_RULES + _TEXT_RULES, rest), ''
        if index == 1:
            dec = _sub(_DECODER_RULES, rest)
            if dec is not None:
                return 'aux_' + dec, ''
            if _sub(_ENCODER_RULES + _TEXT_RULES, rest) is not None:
                return None, ('unused copy in multi-task SiRi (each decoder clones the whole transformer; the '
                              'authors encode with transformer.0 only)')
        return None, ''
    m = re.fullmatch(r'(class_embed|bbox_embed)\.(\d+)\.(.+)', key)
    if m:
        head = _sub(_HEAD_RULES, f'{m.group(1)}.{m.group(3)}')
        prefix = {0: 'bbox_head.', 1: 'aux_head.'}.get(int(m.group(2)))
        return (prefix + head if head and prefix else None), ''
    m = re.fullmatch(rf'pos_trans_norm\.{_WB}', key)
    if m:
        if multi_decoder:
            return f'aux_query_norm.{m.group(1)}', ''
        return None, 'SiRi pos_trans_norm: normalizes the second decoder\'s queries; unused with one decoder'
    return None, ''


def convert_state_dict(state: Dict[str, torch.Tensor], source: str, target: Dict[str, torch.Tensor],
                       timm_backbone: bool = False) -> Tuple['OrderedDict[str, torch.Tensor]', List[Tuple[str, str]],
                                                             List[str]]:
    """Rename the authors' state dict to the keys of an mmvlg model, checking every key and shape.

    Args:
        state (dict): The authors' ``model`` or ``model_ema`` state dict.
        source (str): ``'mdetr'`` or ``'siri'``.
        target (dict): The mmvlg model's state dict (names and shapes to produce).
        timm_backbone (bool): The target's backbone is a ``TimmBackbone``.

    Returns:
        tuple: The converted state dict (in the target's order), the dropped ``(key, reason)`` pairs and the
        added keys (BatchNorm ``num_batches_tracked`` counters).

    Raises:
        ConversionError: Naming every unmapped source key, every mapped key the model does not have, every
            shape mismatch and every model key the source does not provide.
    """
    if source not in SOURCES:
        raise ValueError(f'source must be one of {SOURCES}, got {source!r}')
    siri_layout = any(re.match(r'transformer\.\d+\.', k) for k in state)
    if source == 'mdetr' and siri_layout:
        raise ConversionError('the checkpoint has per-decoder keys (transformer.0.*): it is a SiRi checkpoint, '
                              'use --source siri')
    if source == 'siri' and not siri_layout:
        raise ConversionError('the checkpoint has no transformer.0.* keys: it is not a SiRi checkpoint (the '
                              'authors\' SiRi code always builds transformer.0), use --source mdetr')
    multi = any(k.startswith('transformer.1.') for k in state)
    report = ConversionReport(OPTIONAL_TARGETS)
    converted = OrderedDict()
    sources_of = {}
    for key, value in state.items():
        new, reason = map_key(key, source, multi, timm_backbone)
        if new is None:
            (report.drop(key, reason) if reason else report.unmapped.append(key))
            continue
        if not report.in_target(key, new, target) or not report.shape_matches(key, new, value, target):
            continue
        if new in sources_of:
            raise ConversionError(f'{key} and {sources_of[new]} both map to {new}')
        sources_of[new] = key
        converted[new] = value
    converted, added = report.finish(converted, target)  # the authors' FrozenBatchNorm2d keeps no counter
    return converted, report.dropped, added


def load_authors_checkpoint(path: str, use_ema: bool = False) -> Tuple[Dict[str, torch.Tensor], str]:
    """Read the authors' checkpoint with ``weights_only=True`` and return ``(state_dict, entry name)``."""
    from mmvlg.utils import safe_load_checkpoint
    with torch.serialization.safe_globals([argparse.Namespace]):  # the authors store their ``args``
        checkpoint = safe_load_checkpoint(path, map_location='cpu')
    if not isinstance(checkpoint, dict) or 'model' not in checkpoint:
        raise ConversionError(f'{path} is not a checkpoint of the authors\' code (no "model" entry)')
    entry = 'model'
    if use_ema:
        if checkpoint.get('model_ema') is None:
            raise ConversionError(f'--use-ema: {path} has no EMA weights ("model_ema" is missing or None)')
        entry = 'model_ema'
    return checkpoint[entry], entry


def convert_checkpoint(src: str, dst: str, source: str, model: torch.nn.Module, use_ema: bool = False,
                       config: Optional[str] = None, log: Callable[[str], None] = print) -> dict:
    """Convert ``src`` for ``model`` and write it to ``dst``; returns the written checkpoint.

    The result is loaded back into ``model`` with ``strict=True`` before it is written.
    """
    from mmvlg.models.backbones import TimmBackbone
    state, entry = load_authors_checkpoint(src, use_ema)
    timm_backbone = isinstance(getattr(model, 'backbone', None), TimmBackbone)
    converted, dropped, added = convert_state_dict(state, source, model.state_dict(), timm_backbone)
    model.load_state_dict(converted, strict=True)
    meta = dict(converted_from=osp.basename(src), source=source, weights=entry, config=config)
    return save_converted_checkpoint(dst, converted, meta, dropped, added, len(state), log)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Convert an MDETR/SiRi checkpoint of the authors\' code to mmvlg')
    parser.add_argument('src', help='the authors\' checkpoint (.pth)')
    parser.add_argument('dst', help='mmvlg checkpoint to write')
    parser.add_argument('--source', choices=SOURCES, required=True,
                        help='mdetr: ashkamath/mdetr; siri: qumengxue/siri-vg (one or two decoders)')
    parser.add_argument('--config', required=True, help='mmvlg config of the same architecture (names and shapes)')
    parser.add_argument('--use-ema', action='store_true', help='convert "model_ema" (what the authors evaluate)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.language_model.name_or_path=/models/roberta-base')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    model = build_target_model(args.config, args.cfg_options)
    convert_checkpoint(args.src, args.dst, args.source, model, use_ema=args.use_ema, config=args.config)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
