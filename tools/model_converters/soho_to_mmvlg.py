# Convert the authors' released SOHO checkpoints (researchmm/soho) to mmvlg checkpoints.
"""Convert a checkpoint of the authors' SOHO code (researchmm/soho) to mmvlg.

Command line (the released R-18 pre-training checkpoint ``soho_res18_fp16_40-9441cdd3.pth``)::

    python tools/model_converters/soho_to_mmvlg.py soho_res18_fp16_40-9441cdd3.pth soho_r18_release.pth \\
        --config configs/soho/soho-release_r18_bert-base-3l_8xb16-40e_coco-vg.py \\
        --cfg-options model.language_model.name_or_path=/path/to/bert-base-uncased

The authors' runner saves ``{'meta': ..., 'state_dict': ..., 'optimizer': ...}`` (their ``save_checkpoint``; a
bare state dict is read too, and a ``module.`` prefix removed). The model that saved it is detected from the keys
(or given with ``--task``):

============ ============================================================ ============================================
task         the authors' model                                           mmvlg model
============ ============================================================ ============================================
``pretrain`` ``SOHOSingleStreamPre`` with the ``SimpleVDforPreGate`` neck :class:`~mmvlg.models.SOHO` (the released
             (``configs/Pretrain/soho_res18_pre.py``)                      settings: ``soho-release_r18_...`` config)
``vqa``      ``SOHOSingleStreamVQA`` with the ``SimpleVDforVQA`` neck and  :class:`~mmvlg.models.SOHOVQA`
             ``SOHO_DownStream_VQA_head`` (``configs/VQA/soho_res18_      (``soho-release-vqa_...`` config:
             vqa.py``)                                                     ``SOHOVQAHead``, ``neck.dictionary=None``)
============ ============================================================ ============================================

A VQA checkpoint (their VQA fine-tuning saves one per epoch; only the pre-training one is linked in their README)::

    python tools/model_converters/soho_to_mmvlg.py soho_res18_vqa_epoch_18.pth soho_r18_vqa_mmvlg.pth \
        --config configs/soho/soho-release-vqa_r18_bert-base-3l_8xb32-20e_vqav2.py \
        --cfg-options model.language_model.name_or_path=/path/to/bert-base-uncased \
        model.vqa_head.answers=/path/to/their/answer_list.json

(the answer list in the order of their ``vqa_labels``, 3129 answers).

Key rules (:data:`COMMON_RULES`, :data:`PRETRAIN_RULES`, :data:`VQA_RULES`):

* ``backbone.*``: the authors' ResNet (MMClassification's layout) has the names of ``mmdet.ResNet``
  (``conv1``, ``bn1``, ``layerN.M.{conv1, bn1, conv2, bn2, downsample.0, downsample.1}``): mapped as they are,
  BatchNorm statistics and ``num_batches_tracked`` included;
* ``language.bert.{embeddings, encoder}.*`` (their BERT without pooler) -> the Hugging Face BERT of
  :class:`~mmvlg.models.language_models.HFTextEncoder` (``language_model.model.*``), the same names;
* neck: ``conv`` (1x1 ConvModule: conv + BN) -> ``neck.proj``, ``gate_fc`` -> ``neck.gate``, ``pos_line`` ->
  ``neck.entry_proj``, ``ln`` -> ``neck.norm``, ``mask_emb.weight`` (an ``nn.Embedding(1, C)``) ->
  ``neck.mask_embedding`` (C,), ``vq.{embed, cluster_size, embed_avg}`` -> ``neck.dictionary.*``
  (:class:`~mmvlg.models.layers.VisualDictionary`, whose ``update='code'`` is their moving average);
* heads: ``mask_l_fc.weight`` (the MLM decoder: one bias-free Linear on the fused text tokens, its weight the word
  embeddings) -> ``mlm_head.decoder.weight`` (``MLMHead(transform=False, bias=False)``, tied; the two checkpoint
  keys must be equal); ``head.match_class.weight`` (bias-free ITM Linear) -> ``itm_head.fc.weight``
  (``ITMHead(bias=False)``); ``head.vqa.{0, 3}`` (Linear, ReLU, Dropout, Linear) -> ``vqa_head.classifier.{0, 3}``
  (:class:`~mmvlg.models.SOHOVQAHead`). MVM has no parameters: both codes score the fused visual tokens by their
  cosine to the dictionary entries.

Dropped, with the reason in ``meta['dropped_keys']`` (and printed):

* ``neck.vq.cluster_sum``: a running total of the tokens assigned to each entry that their dictionary adds to and
  never reads (neither its lookup nor its update uses it; mmvlg logs the usage per batch instead).

Kept from the model's own initialization (``meta['kept_keys']``, printed): for ``vqa``, ``neck.mask_embedding``
(MVM's mask embedding, which the released VQA neck does not have and SOHOVQA never reads: it is frozen there).

Anything else without counterpart (e.g. the ``begin_line`` of their ``begin_align=True`` neck, which no released
config uses), a tensor whose shape differs from the model's (convert into the config of the checkpoint's own
sizes), or a model tensor the checkpoint does not provide is an error (:class:`ConversionError`) naming the keys.
The checks, the model building and the (atomic) writing are shared by every converter (:mod:`mmvlg.utils.converters`);
the key rules are this file's.

What the released forward needs of the config (``configs/soho/soho-release_r18_bert-base-3l_8xb16-40e_coco-vg.py``;
no option of SOHO, SOHONeck or VisualDictionary beyond the existing ones):
the MLM head without transform and bias, the bias-free ITM head, the neck's gate with the 1x1 conv and gate conv
followed by BatchNorm (their ``SyncBN``), a 3-layer BERT-base of bert-base-uncased's vocabulary. Equivalence with
the authors' code on tiny random-weight checkpoints of both models (dictionary lookups, visual tokens, fused tokens,
MLM/MVM/ITM and VQA logits): ``tests/test_tools/test_soho_converter.py``. In eval mode the two compute the same
function; two differences that only concern training are listed in that test's docstring.
"""
import argparse
import os.path as osp
import re
from collections import OrderedDict
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch

from mmvlg.utils.converters import (
    ConversionError,
    ConversionReport,
    build_target_model,
    fill_tied_tensors,
    keep_model_tensors,
    load_weights_entry,
    save_converted_checkpoint,
)

_WB = r'(weight|bias)'
_BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'

#: ``(pattern, replacement, reason)``: a source key that fully matches ``pattern`` becomes ``re.sub(pattern,
#: replacement, key)``, or, with ``replacement`` None, is dropped for ``reason``.
Rule = Tuple[str, Optional[str], str]

COMMON_RULES: Tuple[Rule, ...] = (
    (rf'backbone\.(conv1\.weight|bn1\.{_BN})', r'backbone.\1', ''),
    (rf'backbone\.(layer\d+\.\d+\.(conv\d\.weight|bn\d\.{_BN}|downsample\.0\.weight|downsample\.1\.{_BN}))',
     r'backbone.\1', ''),
    (r'language\.bert\.((embeddings|encoder)\..+)', r'language_model.model.\1', ''),
    (r'neck\.conv\.conv\.(weight|bias)', r'neck.proj.conv.\1', ''),
    (rf'neck\.conv\.bn\.{_BN}', r'neck.proj.bn.\1', ''),
    (rf'neck\.ln\.{_WB}', r'neck.norm.\1', ''),
)
PRETRAIN_RULES: Tuple[Rule, ...] = (
    (r'neck\.gate_fc\.conv\.(weight|bias)', r'neck.gate.conv.\1', ''),
    (rf'neck\.gate_fc\.bn\.{_BN}', r'neck.gate.bn.\1', ''),
    (rf'neck\.pos_line\.{_WB}', r'neck.entry_proj.\1', ''),
    (r'neck\.mask_emb\.weight', 'neck.mask_embedding', ''),
    (r'neck\.vq\.(embed|cluster_size|embed_avg)', r'neck.dictionary.\1', ''),
    (r'neck\.vq\.cluster_sum', None, 'the authors\' running total of the tokens assigned to each dictionary entry, '
     'never read by their lookup nor their update (not a weight; mmvlg logs the usage per batch)'),
    (r'mask_l_fc\.weight', 'mlm_head.decoder.weight', ''),
    (r'head\.match_class\.weight', 'itm_head.fc.weight', ''),
)
VQA_RULES: Tuple[Rule, ...] = (
    (rf'head\.vqa\.([03])\.{_WB}', r'vqa_head.classifier.\1.\2', ''),
)


class Task(NamedTuple):
    description: str
    rules: Tuple[Rule, ...]
    detect: Callable[[Sequence[str]], bool]
    #: ``(model key pattern, reason)``: model tensors the checkpoint lacks that keep the model's own values.
    kept_targets: Tuple[Tuple[str, str], ...] = ()


TASKS: Dict[str, Task] = dict(
    pretrain=Task('pre-training (SOHOSingleStreamPre: visual dictionary, MLM, MVM, ITM)',
                  COMMON_RULES + PRETRAIN_RULES,
                  lambda keys: any(k.startswith(('neck.vq.', 'mask_l_fc.', 'head.match_class.')) for k in keys)),
    vqa=Task('VQA (SOHOSingleStreamVQA: SimpleVDforVQA neck, SOHO_DownStream_VQA_head)', COMMON_RULES + VQA_RULES,
             lambda keys: any(k.startswith('head.vqa.') for k in keys),
             kept_targets=((r'neck\.mask_embedding', 'MVM\'s mask embedding: the released VQA neck has none and '
                            'SOHOVQA never reads it (frozen)'),)),
)


def detect_task(keys: Sequence[str]) -> str:
    """The task of a state dict's keys (see :data:`TASKS`)."""
    for name, task in TASKS.items():
        if task.detect(keys):
            return name
    raise ConversionError('cannot tell which SOHO model the checkpoint is (no neck.vq.*, mask_l_fc.*, '
                          'head.match_class.* nor head.vqa.* keys); is it a checkpoint of the authors\' SOHO code?')


def map_key(key: str, value: torch.Tensor, task: Task) -> Tuple[Optional[Tuple[str, torch.Tensor]], str]:
    """One source key -> ``((new key, tensor), '')``, ``(None, reason)`` (dropped) or ``(None, '')`` (unknown)."""
    for pattern, repl, reason in task.rules:
        if re.fullmatch(pattern, key):
            if repl is None:
                return None, reason
            new = re.sub(pattern, repl, key)
            if new == 'neck.mask_embedding' and value.dim() == 2 and value.shape[0] == 1:
                value = value[0]  # nn.Embedding(1, C).weight -> the (C,) parameter
            return (new, value), ''
    return None, ''


def map_state(state: Dict[str, torch.Tensor], task: Optional[str] = None
              ) -> Tuple[str, 'OrderedDict[str, Tuple[str, torch.Tensor]]', List[Tuple[str, str]], List[str]]:
    """Map every source key.

    Returns:
        tuple: the task, ``{model key: (source key, tensor)}``, the dropped ``(key, reason)`` pairs and the
        unmapped keys.

    Raises:
        ValueError: An unknown task.
        ConversionError: A task that cannot be detected.
    """
    task = task or detect_task(list(state))
    if task not in TASKS:
        raise ValueError(f'task must be one of {list(TASKS)}, got {task!r}')
    spec = TASKS[task]
    mapped: 'OrderedDict[str, Tuple[str, torch.Tensor]]' = OrderedDict()
    dropped, unmapped = [], []
    for key, value in state.items():
        target, reason = map_key(key, value, spec)
        if target is None:
            (dropped.append((key, reason)) if reason else unmapped.append(key))
            continue
        new, new_value = target
        if new in mapped:
            raise ConversionError(f'{mapped[new][0]} and {key} both map to {new}')
        mapped[new] = (key, new_value)
    return task, mapped, dropped, unmapped


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
        keys (BatchNorm counters the checkpoint lacks), the task and the kept ``(model key, reason)`` pairs (model
        tensors of the task's ``kept_targets`` that the checkpoint lacks, given the model's own values).

    Raises:
        ConversionError: Naming every unmapped source key, every mapped key the model does not have, every
            shape mismatch, a tied pair that differs in the checkpoint and every model tensor the source does
            not provide.
    """
    task, mapped, dropped, unmapped = map_state(state, task)
    report = ConversionReport()
    report.dropped, report.unmapped = dropped, unmapped
    converted = OrderedDict()
    for new, (src, value) in mapped.items():
        if report.in_target(src, new, target) and report.shape_matches(src, new, value, target):
            converted[new] = value.to(target[new].dtype)
    fill_tied_tensors(converted, target, {k: src for k, (src, _) in mapped.items()}, report)
    kept = keep_model_tensors(converted, target, TASKS[task].kept_targets)
    converted, added = report.finish(converted, target)
    return converted, report.dropped, added, task, kept


def load_authors_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], str]:
    """Read the authors' checkpoint with ``weights_only=True`` and return ``(state_dict, entry name)``.

    The weights are the ``state_dict`` entry (their runner's ``{'meta', 'state_dict', 'optimizer'}``), or the
    file itself when it is a bare state dict; a ``module.`` prefix of a distributed wrapper is removed.
    """
    return load_weights_entry(path, 'state_dict', 'SOHO', '{"state_dict": ...}')


def convert_checkpoint(src: str, dst: str, model: torch.nn.Module, task: Optional[str] = None,
                       config: Optional[str] = None, log: Callable[[str], None] = print) -> dict:
    """Convert ``src`` for ``model`` and write it to ``dst`` (atomically); returns the written checkpoint.

    The result is loaded back into ``model`` with ``strict=True`` before it is written.
    """
    state, entry = load_authors_checkpoint(src)
    converted, dropped, added, task, kept = convert_state_dict(state, model.state_dict(), task)
    model.load_state_dict(converted, strict=True)
    meta = dict(converted_from=osp.basename(src), source=f'SOHO {task}', task=task, weights=entry, config=config,
                kept_keys=[f'{k}: {why}' for k, why in kept])
    for key, why in kept:
        log(f'kept the model\'s own {key}: {why}')
    return save_converted_checkpoint(dst, converted, meta, dropped, added, len(state), log)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Convert a SOHO checkpoint of the authors\' code to mmvlg')
    parser.add_argument('src', help='the authors\' checkpoint ({"meta", "state_dict", ...} or a state dict)')
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
