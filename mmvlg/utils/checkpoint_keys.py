"""Which weights of a model a checkpoint fills, and an error (or a loud warning) when some are not filled.

MMEngine loads ``load_from`` (and the checkpoint of ``tools/test.py``) with ``strict=False``: a checkpoint of
another architecture leaves most of the model at its random initial values, with only a log line, and the
evaluation that follows reports meaningless numbers. :func:`check_checkpoint_keys` compares the checkpoint's
``state_dict`` with the model's, key by key, as MMEngine will load it (``module.`` prefixes removed; the
``ema_state_dict`` that ``EMAHook`` saves is not what is loaded into the model and is not compared):

* **missing**: model weights the checkpoint does not have (``num_batches_tracked`` of BN layers excepted:
  MMEngine ignores them and BN fills them in);
* **unexpected**: checkpoint weights the model does not have;
* **shape-mismatched**: weights of both with another shape (they are not loaded either).

Keys expected to differ are allowed by regular expression (:func:`re.search` on the key): ``allow_missing``
for model keys (missing or shape-mismatched, e.g. ``r'^bbox_head\\.'`` for a deliberately fresh head),
``allow_unexpected`` for checkpoint keys (e.g. ``r'^aux_decoder\\.'``). In a run these are the arguments of
:class:`~mmvlg.engine.hooks.CheckpointKeysHook` (``tools/train.py`` and ``tools/test.py`` add one when the
config has none); :class:`~mmvlg.apis.GroundingInferencer` reads them from the same hook entry of its config.
"""
import re
from collections import OrderedDict
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = ['CheckpointKeysError', 'CheckpointKeyReport', 'compare_checkpoint_keys', 'check_checkpoint_keys']

DEFAULT_REVISE_KEYS = [(r'^module\.', '')]


class CheckpointKeysError(RuntimeError):
    """A checkpoint does not fill the model's weights (beyond the allowed keys)."""


class CheckpointKeyReport:
    """How a checkpoint's state dict fits a model.

    Attributes:
        missing (list[str]): Model keys the checkpoint does not have.
        unexpected (list[str]): Checkpoint keys the model does not have.
        mismatched (list[tuple[str, tuple, tuple]]): ``(key, checkpoint shape, model shape)``.
        loaded (list[str]): Model keys the checkpoint fills.
        num_model_keys (int): Keys of the model's state dict.
    """

    def __init__(self, missing: List[str], unexpected: List[str], mismatched: List[Tuple[str, tuple, tuple]],
                 loaded: List[str], num_model_keys: int) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        self.loaded = loaded
        self.num_model_keys = num_model_keys

    def filtered(self, allow_missing: Sequence[str] = (), allow_unexpected: Sequence[str] = ()
                 ) -> 'CheckpointKeyReport':
        """The report without the allowed keys (``allow_missing`` also covers shape-mismatched keys)."""
        def allowed(key: str, patterns: Sequence[str]) -> bool:
            return any(re.search(p, key) for p in patterns)
        return CheckpointKeyReport(
            [k for k in self.missing if not allowed(k, allow_missing)],
            [k for k in self.unexpected if not allowed(k, allow_unexpected)],
            [m for m in self.mismatched if not allowed(m[0], allow_missing)],
            self.loaded, self.num_model_keys)

    def __bool__(self) -> bool:
        """Whether anything does not fit."""
        return bool(self.missing or self.unexpected or self.mismatched)

    def describe(self, max_listed: int = 20) -> str:
        """The keys that do not fit, the first ``max_listed`` of each kind and a count."""
        def listing(title: str, keys: List[str]) -> str:
            shown = ', '.join(keys[:max_listed])
            more = f', ... ({len(keys) - max_listed} more)' if len(keys) > max_listed else ''
            return f'\n  {title} ({len(keys)}): {shown}{more}'
        text = ''
        if self.missing:
            text += listing('missing from the checkpoint (left at their initial values)', self.missing)
        if self.mismatched:
            text += listing('shape mismatch (not loaded)',
                            [f'{k} {tuple(c)} in the checkpoint vs {tuple(m)} in the model'
                             for k, c, m in self.mismatched])
        if self.unexpected:
            text += listing('in the checkpoint but not in the model (ignored)', self.unexpected)
        return text


def _state_dict_of(checkpoint: Any, revise_keys: Sequence[Tuple[str, str]]) -> 'OrderedDict[str, Any]':
    """The state dict MMEngine's ``_load_checkpoint_to_model`` loads from a checkpoint."""
    if not isinstance(checkpoint, dict):
        raise TypeError(f'expected a checkpoint dict or a state dict, got {type(checkpoint).__name__}')
    state_dict = checkpoint['state_dict'] if 'state_dict' in checkpoint else checkpoint
    if not isinstance(state_dict, dict):
        raise TypeError(f"checkpoint['state_dict'] is a {type(state_dict).__name__}, not a dict")
    for pattern, replacement in revise_keys:
        state_dict = OrderedDict((re.sub(pattern, replacement, k), v) for k, v in state_dict.items())
    return state_dict


def _unwrap(model: nn.Module) -> nn.Module:
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def compare_checkpoint_keys(model: nn.Module, checkpoint: Any,
                            revise_keys: Sequence[Tuple[str, str]] = DEFAULT_REVISE_KEYS) -> CheckpointKeyReport:
    """Compare a checkpoint's state dict with a model's (nothing is loaded).

    Args:
        model (nn.Module): The model (unwrapped: not a DDP wrapper).
        checkpoint (dict): A runner checkpoint (with ``state_dict``) or a bare state dict.
        revise_keys (list[tuple[str, str]]): ``(pattern, replacement)`` applied to the checkpoint keys, as
            MMEngine does. Defaults to removing a ``module.`` prefix.

    Returns:
        CheckpointKeyReport: The report.
    """
    model = _unwrap(model)
    state = _state_dict_of(checkpoint, revise_keys)
    own = model.state_dict()
    missing, mismatched, loaded = [], [], []
    for key, value in own.items():
        if key not in state:
            if not key.endswith('num_batches_tracked'):
                missing.append(key)
            continue
        theirs = state[key]
        if isinstance(value, torch.Tensor) and isinstance(theirs, torch.Tensor) and value.shape != theirs.shape:
            mismatched.append((key, tuple(theirs.shape), tuple(value.shape)))
        else:
            loaded.append(key)
    unexpected = [k for k in state if k not in own]
    return CheckpointKeyReport(missing, unexpected, mismatched, loaded, len(own))


ALLOW_HINT = ("If some keys are meant to differ (e.g. a deliberately fresh head), allow them by regular expression "
              "in the config: custom_hooks = [..., dict(type='CheckpointKeysHook', allow_missing=[r'^bbox_head\\.'], "
              "allow_unexpected=[r'^aux_decoder\\.'])].")


def check_checkpoint_keys(model: nn.Module,
                          checkpoint: Any,
                          filename: Optional[str] = None,
                          allow_missing: Sequence[str] = (),
                          allow_unexpected: Sequence[str] = (),
                          on_mismatch: str = 'error',
                          max_listed: int = 20,
                          revise_keys: Sequence[Tuple[str, str]] = DEFAULT_REVISE_KEYS,
                          logger: Any = 'current') -> CheckpointKeyReport:
    """Check that a checkpoint fills the model's weights, before it is loaded.

    Args:
        model (nn.Module): The model.
        checkpoint (dict): A runner checkpoint or a bare state dict.
        filename (str, optional): The checkpoint's path, for the messages.
        allow_missing (list[str]): Regular expressions of model keys that may be missing from the checkpoint
            or have another shape there.
        allow_unexpected (list[str]): Regular expressions of checkpoint keys that the model may lack.
        on_mismatch (str): ``'error'`` (testing, inference): raise :class:`CheckpointKeysError` listing the
            keys that are neither loaded nor allowed. ``'warn'`` (fine-tuning from ``load_from``): log a
            WARNING listing them. In both modes a checkpoint that fills none of the model's weights is an
            error.
        max_listed (int): Keys listed per kind. Defaults to 20.
        revise_keys (list[tuple[str, str]]): As in :func:`compare_checkpoint_keys`.
        logger: MMEngine logger (name) for the messages. Defaults to ``'current'``.

    Returns:
        CheckpointKeyReport: The full report (allowed keys included).

    Raises:
        CheckpointKeysError: As described for ``on_mismatch``.
    """
    from mmengine.logging import print_log
    if on_mismatch not in ('error', 'warn'):
        raise ValueError(f"on_mismatch must be 'error' or 'warn', got {on_mismatch!r}")
    for name, patterns in (('allow_missing', allow_missing), ('allow_unexpected', allow_unexpected)):
        if isinstance(patterns, str):
            raise TypeError(f'{name} must be a list of regular expressions, got the string {patterns!r}')
        for p in patterns:
            try:
                re.compile(p)
            except re.error as err:
                raise ValueError(f'{name}: {p!r} is not a regular expression ({err})') from None
    report = compare_checkpoint_keys(model, checkpoint, revise_keys)
    shown = repr(filename) if filename else '(no file name)'
    kind = type(_unwrap(model)).__name__
    if report.num_model_keys and not report.loaded:
        raise CheckpointKeysError(
            f'checkpoint {shown} fills none of the {report.num_model_keys} weights of the model ({kind}): it '
            'belongs to another architecture or stores its weights under other names (e.g. with a prefix).'
            f'{report.describe(max_listed)}\nUse a checkpoint of this config, or convert it (tools/model_converters/).')
    rest = report.filtered(allow_missing, allow_unexpected)
    allowed = (len(report.missing) + len(report.mismatched) + len(report.unexpected)
               - len(rest.missing) - len(rest.mismatched) - len(rest.unexpected))
    allowed_note = f' ({allowed} differing keys are allowed by allow_missing/allow_unexpected)' if allowed else ''
    if not rest:
        print_log(f'checkpoint {shown}: {len(report.loaded)} of {report.num_model_keys} model weights loaded'
                  f'{allowed_note}', logger=logger)
        return report
    not_loaded = len(rest.missing) + len(rest.mismatched)
    summary = (f'checkpoint {shown} does not fit the model ({kind}): {not_loaded} of {report.num_model_keys} '
               f'model weights are not loaded from it, {len(rest.unexpected)} of its weights are not in the '
               f'model{allowed_note}.{rest.describe(max_listed)}')
    if on_mismatch == 'error':
        raise CheckpointKeysError(
            f'{summary}\nRefusing to evaluate a partly random model. Check that the checkpoint belongs to this '
            f'config. {ALLOW_HINT}')
    bar = '!' * 100
    print_log(f'\n{bar}\nWARNING: load_from: {summary}\nTraining goes on with these weights at their initial '
              f'values. {ALLOW_HINT}\n{bar}', logger=logger, level=30)
    return report
