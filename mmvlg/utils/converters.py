"""What every converter of another code base's checkpoints shares (``tools/model_converters/*_to_mmvlg.py``).

A converter maps the keys of the authors' state dict onto the tensors of an mmvlg model built from a config; the
mapping rules are its own, the checks are these:

* :func:`build_target_model` builds the model of a config (names and shapes of the tensors to produce);
* :class:`ConversionReport` collects, while the converter maps, every source key without counterpart, every
  mapped key that the model does not have (or drops it for a stated reason when an *optional target* pattern
  matches it), every shape mismatch and every tensor assembled from several keys with a part missing;
  :meth:`ConversionReport.finish` then fills BatchNorm's ``num_batches_tracked`` counters
  (:func:`fill_batchnorm_counters`), names the model tensors that the source does not provide, and raises one
  :class:`ConversionError` naming every bad key of every kind;
* :func:`save_converted_checkpoint` writes ``{'meta': ..., 'state_dict': ...}`` with the dropped and added keys in
  ``meta`` and prints what was dropped and why.

A converter then reads::

    report = ConversionReport(OPTIONAL_TARGETS)
    for key, value in state.items():
        new, reason = map_key(key)                  # the converter's own rules
        if new is None:
            report.drop(key, reason) if reason else report.unmapped.append(key)
        elif report.in_target(key, new, target) and report.shape_matches(key, new, value, target):
            converted[new] = value
    converted, added = report.finish(converted, target)   # raises ConversionError
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Pattern, Sequence, Tuple, Union

import torch

__all__ = ['ConversionError', 'ConversionReport', 'build_target_model', 'fill_batchnorm_counters',
           'optional_target_reason', 'save_converted_checkpoint', 'load_weights_entry', 'tied_groups',
           'fill_tied_tensors', 'keep_model_tensors']

OptionalTargets = Sequence[Tuple[Union[str, Pattern], str]]

# The kinds of bad keys, in the order the error lists them: (attribute of ConversionReport, title).
PROBLEM_KINDS = (
    ('unmapped', 'keys of the checkpoint without a counterpart in mmvlg'),
    ('unexpected', 'keys mapped to tensors the model does not have (does the config match the checkpoint?)'),
    ('mismatched', 'shape mismatches (does the config match the checkpoint?)'),
    ('incomplete', 'tensors assembled from several keys with a part missing'),
    ('missing', 'tensors of the model that the checkpoint does not provide'),
)


class ConversionError(ValueError):
    """A source key without counterpart, a shape mismatch, or a model tensor missing from the source."""


def build_target_model(config: str, cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """Build the mmvlg model of a config (without loading pretrained weights: no ``init_weights``).

    Args:
        config (str): Path of an mmvlg config.
        cfg_options (dict, optional): Overrides merged into the config (``--cfg-options``).

    Returns:
        nn.Module: ``MODELS.build(cfg.model)``, whose ``state_dict()`` gives the names and shapes to produce.
    """
    from mmengine.config import Config

    from mmvlg.registry import MODELS

    from .setup_env import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return MODELS.build(cfg.model)


def optional_target_reason(new: str, optional_targets: OptionalTargets) -> Optional[str]:
    """The reason to drop a source tensor mapped to ``new`` when the model has no such tensor: that of the first
    ``(pattern, reason)`` whose pattern is found in ``new`` (``re.search``), else None."""
    for pattern, why in optional_targets:
        if re.search(pattern, new):
            return why
    return None


def fill_batchnorm_counters(converted: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor]
                            ) -> Tuple[List[str], List[str]]:
    """Add the model's BatchNorm ``num_batches_tracked`` counters that ``converted`` lacks, as zeros.

    Authors' code often freezes BatchNorm (DETR's ``FrozenBatchNorm2d``, maskrcnn_benchmark's) and keeps no
    counter; they are not weights (the frozen statistics are used in eval mode and by mmvlg's frozen stages).

    Args:
        converted (dict): The converted tensors so far, in the model's names; filled in place.
        target (dict): The model's state dict.

    Returns:
        tuple[list[str], list[str]]: The added keys and the other model keys that ``converted`` lacks (the
        missing tensors), both in the model's order.
    """
    added, missing = [], []
    for new, value in target.items():
        if new in converted:
            continue
        if new.endswith('num_batches_tracked'):
            converted[new] = torch.zeros_like(value)
            added.append(new)
        else:
            missing.append(new)
    return added, missing


class ConversionReport:
    """The dropped keys and the problems of one conversion.

    Every source key is either mapped, dropped for a stated reason (:attr:`dropped`) or a problem of one of the
    kinds of :data:`PROBLEM_KINDS`; :meth:`finish` raises one :class:`ConversionError` that names them all.

    Args:
        optional_targets (sequence): ``(pattern, reason)`` pairs: a source tensor mapped to a key that the model
            does not have is dropped with ``reason`` when ``pattern`` is found in that key (e.g. a pooler or a
            head that the config leaves out), and is a problem otherwise.

    Attributes:
        dropped (list[tuple[str, str]]): ``(source key, reason)`` of the tensors left out on purpose.
        unmapped (list[str]): Source keys without counterpart.
        unexpected (list[str]): ``'source -> new'`` for mapped keys that the model does not have.
        mismatched (list[str]): Shape mismatches, with both shapes.
        incomplete (list[str]): Tensors assembled from several source keys with a part missing.
        missing (list[str]): Model tensors that the source does not provide (filled by :meth:`finish`).
    """

    def __init__(self, optional_targets: OptionalTargets = ()) -> None:
        self.optional_targets = tuple(optional_targets)
        self.dropped: List[Tuple[str, str]] = []
        self.unmapped: List[str] = []
        self.unexpected: List[str] = []
        self.mismatched: List[str] = []
        self.incomplete: List[str] = []
        self.missing: List[str] = []

    def drop(self, key: str, reason: str) -> None:
        """Leave out the source tensor ``key`` for ``reason``."""
        self.dropped.append((key, reason))

    def in_target(self, sources: Union[str, Sequence[str]], new: str, target: Dict[str, torch.Tensor]) -> bool:
        """Whether the model has ``new``; if not, the source keys are dropped (an optional target) or recorded
        as unexpected.

        Args:
            sources (str | sequence[str]): The source key(s) that make ``new``.
            new (str): The model key they map to.
            target (dict): The model's state dict.
        """
        if new in target:
            return True
        sources = [sources] if isinstance(sources, str) else list(sources)
        why = optional_target_reason(new, self.optional_targets)
        if why is not None:
            self.dropped.extend((src, why) for src in sources)
        else:
            self.unexpected.append(f'{" + ".join(sources)} -> {new}')
        return False

    def shape_matches(self, names: str, new: str, value: torch.Tensor, target: Dict[str, torch.Tensor]) -> bool:
        """Whether ``value`` (made from the source keys ``names``) has the shape of the model's ``new``; records
        the mismatch otherwise."""
        if tuple(value.shape) == tuple(target[new].shape):
            return True
        self.mismatched.append(f'{names} -> {new}: checkpoint {tuple(value.shape)}, model {tuple(target[new].shape)}')
        return False

    def problems(self) -> List[str]:
        """One paragraph per kind of problem found: its count, title and keys."""
        out = []
        for kind, title in PROBLEM_KINDS:
            keys = getattr(self, kind)
            if keys:
                out.append(f'{len(keys)} {title}:\n  ' + '\n  '.join(keys))
        return out

    def raise_if_any(self) -> None:
        """Raise :class:`ConversionError` naming every problem, if there is one."""
        problems = self.problems()
        if problems:
            raise ConversionError('cannot convert the checkpoint:\n' + '\n'.join(problems))

    def finish(self, converted: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor]
               ) -> Tuple['OrderedDict[str, torch.Tensor]', List[str]]:
        """Fill the BatchNorm counters, record the missing tensors and raise if anything is wrong.

        Returns:
            tuple: The converted state dict in the model's order and the added (BatchNorm counter) keys.

        Raises:
            ConversionError: Naming every bad key of every kind.
        """
        added, missing = fill_batchnorm_counters(converted, target)
        self.missing.extend(missing)
        self.raise_if_any()
        return OrderedDict((k, converted[k]) for k in target), added


def load_weights_entry(path: str, entry: str, code: str, layout: str) -> Tuple[Dict[str, torch.Tensor], str]:
    """Read another code base's checkpoint with ``weights_only=True`` and return ``(state_dict, entry name)``.

    The weights are the ``entry`` item of the file (e.g. ``'model'`` of X-VLM's ``{'model': ..., 'config': ...}``,
    ``'state_dict'`` of an mmcv 1.x runner's file), or the file itself when it is a bare state dict; a ``module.``
    prefix of ``DistributedDataParallel`` is removed.

    Args:
        path (str): The file.
        entry (str): The item holding the weights.
        code (str): The code base's name, for the messages (``'X-VLM'``, ``'SOHO'``).
        layout (str): The file's layout, for the messages (``'{"model": state_dict}'``).

    Raises:
        UnsafeCheckpointError: The file needs code execution to load; the message says how to extract the weights.
        ConversionError: Not a dict, or non-tensor entries among the weights.
    """
    from .checkpoint import UnsafeCheckpointError, safe_load_checkpoint
    try:
        checkpoint = safe_load_checkpoint(path, map_location='cpu', restore=False)
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(
            f'{err}\nOnly the weights are needed: where the authors\' code is trusted and installed, extract them '
            f"with torch.save({{'{entry}': torch.load(src, map_location='cpu', weights_only=False)['{entry}']}}, "
            "'weights.pth') and convert that file.") from err
    if not isinstance(checkpoint, dict):
        raise ConversionError(f'{path} is not a checkpoint of the authors\' {code} code (not a dict)')
    found = entry if isinstance(checkpoint.get(entry), dict) else None
    state = checkpoint[found] if found else checkpoint
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ConversionError(f'{path}: {f"the {entry} entry" if found else "the file"} holds non-tensor entries '
                              f'{bad[:5]}: not a checkpoint of the authors\' {code} code ({layout})')
    if state and all(k.startswith('module.') for k in state):
        state = OrderedDict((k[len('module.'):], v) for k, v in state.items())
    return state, found or '(state dict)'


def tied_groups(target: Dict[str, torch.Tensor]) -> List[List[str]]:
    """The keys of a model's state dict that are one tensor (e.g. an MLM decoder tied to the word embeddings)."""
    groups: Dict[Tuple[int, int, Tuple[int, ...]], List[str]] = {}
    for k, v in target.items():
        if v.numel():
            groups.setdefault((v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape)), []).append(k)
    return [g for g in groups.values() if len(g) > 1]


def fill_tied_tensors(converted: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor],
                      sources: Dict[str, str], report: 'ConversionReport') -> None:
    """Check and complete the tied tensors of the model (:func:`tied_groups`) in ``converted``, in place.

    The checkpoint's tensors mapped to one tied group must be equal (a mismatch goes to ``report.mismatched``,
    naming each ``source -> model key`` of ``sources``); a group provided under one of its names is provided under
    all of them.
    """
    for group in tied_groups(target):
        present = [k for k in group if k in converted]
        if any(not torch.equal(converted[present[0]], converted[k]) for k in present[1:]):
            report.mismatched.append(' and '.join(f'{sources[k]} -> {k}' for k in present) +
                                     ': one tensor in the model (tied), different in the checkpoint')
        for k in group:
            if k not in converted and present:
                converted[k] = converted[present[0]]


def keep_model_tensors(converted: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor],
                       kept_targets: Sequence[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """Give ``converted`` the model's own value (``target``'s, copied) of each tensor it lacks whose key fully
    matches a pattern of ``kept_targets`` (``(pattern, reason)`` pairs: tensors the source has no counterpart for
    and the model keeps as initialized); returns the kept ``(key, reason)`` pairs."""
    kept = []
    for new, value in target.items():
        if new in converted:
            continue
        why = next((why for pattern, why in kept_targets if re.fullmatch(pattern, new)), None)
        if why is not None:
            converted[new] = value.detach().clone()
            kept.append((new, why))
    return kept


def save_converted_checkpoint(dst: str, state_dict: dict, meta: dict, dropped: List[tuple], added: List[str],
                              num_source: int, log: Callable[[str], None] = print) -> dict:
    """Write a checkpoint converted from another code base and report what was dropped and added.

    Shared by the converters in ``tools/model_converters/`` (also importable from :mod:`mmvlg.utils.checkpoint`).

    Args:
        dst (str): The file to write (its folder is created).
        state_dict (dict): The converted tensors, in the mmvlg model's names.
        meta (dict): ``converted_from``, ``source``, ``weights`` (the source entry) and ``config``; the dropped
            and added keys are added to it.
        dropped (list[tuple]): ``(source key, reason)`` of every source tensor left out.
        added (list[str]): Model keys the source did not have (BatchNorm ``num_batches_tracked`` counters).
        num_source (int): The number of source tensors, for the report.
        log (callable): Where the report goes.

    Returns:
        dict: The written ``{'meta': ..., 'state_dict': ...}``.
    """
    meta = dict(meta, dropped_keys=[f'{k}: {why}' for k, why in dropped], added_keys=added)
    out = dict(meta=meta, state_dict=state_dict)
    from .atomic_io import atomic_torch_save
    atomic_torch_save(out, dst)
    reasons = {}
    for key, why in dropped:
        reasons.setdefault(why, []).append(key)
    for why, keys in reasons.items():
        log(f'dropped {len(keys)} tensors: {why} (e.g. {keys[0]})')
    if added:
        log(f'added {len(added)} BatchNorm num_batches_tracked counters (zeros)')
    log(f'converted {num_source} tensors of "{meta["weights"]}" ({meta["source"]}) into {len(state_dict)} mmvlg '
        f'tensors: {dst}')
    return out
