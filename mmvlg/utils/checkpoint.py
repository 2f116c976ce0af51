"""Safe checkpoint loading on torch >= 2.6.

``torch.load`` defaults to ``weights_only=True`` since torch 2.6, which refuses any pickled global that is
not on an allow-list. MMEngine's own checkpoints carry a few such globals (the message hub's
``HistoryBuffer`` and the numpy arrays/scalars inside it), so ``resume`` and ``load_from`` fail out of the
box. This module allow-lists exactly those data-only types and nothing that can call arbitrary code: in
particular ``builtins.getattr`` is *not* allowed (with it, a pickle can reach bound methods such as
``ndarray.tofile``).

Where MMEngine's checkpoints need ``getattr``: ``HistoryBuffer.__getstate__`` adds the class-level dict of
statistics functions (``{'min': HistoryBuffer.min, ...}``) to every pickled buffer, and pickle writes a
function defined in a class as ``getattr(HistoryBuffer, 'min')``. :func:`sanitize_checkpoint`, run by
:class:`~mmvlg.engine.hooks.SafeCheckpointHook` before every save, therefore stores each ``HistoryBuffer``
as plain data (its histories as tensors) and numpy scalars as Python numbers; :func:`restore_checkpoint`
(run by :func:`safe_load_checkpoint` and by the hook after loading) turns them back into ``HistoryBuffer``s,
so ``resume`` restores the message hub as before. mmvlg checkpoints then need no global beyond torch's own.

Every checkpoint, ours or a third party's, is loaded with ``weights_only=True``; a file whose unpickling
would run code is refused with an error that names the file.
"""
import os
from typing import Any, List, Optional

import numpy as np
import torch

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar


def _numpy_dtype_classes() -> List[type]:
    names = ['float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
             'uint32', 'uint64', 'bool_']
    return [type(np.dtype(getattr(np, n))) for n in names]


def _safe_globals() -> List[Any]:
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype, *_numpy_dtype_classes()]


SAFE_CHECKPOINT_GLOBALS = _safe_globals()


class UnsafeCheckpointError(RuntimeError):
    """Raised when a checkpoint cannot be loaded with ``weights_only=True``."""


def register_checkpoint_safe_globals() -> None:
    """Allow-list the data-only globals of MMEngine checkpoints and route MMEngine's local-file loader
    through :func:`safe_load_checkpoint`. Idempotent."""
    torch.serialization.add_safe_globals(SAFE_CHECKPOINT_GLOBALS)
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_safe_local)


def safe_load_checkpoint(filename: str, map_location: Optional[Any] = 'cpu', restore: bool = True) -> Any:
    """Load a checkpoint file with ``weights_only=True``.

    Args:
        filename (str): Path of the checkpoint.
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.
        restore (bool): Whether to turn the plain-data message-hub buffers written by
            :func:`sanitize_checkpoint` back into ``HistoryBuffer`` objects (see :func:`restore_checkpoint`).
            Defaults to True.

    Returns:
        The unpickled object (usually a dict with ``state_dict``/``meta``/...).

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file holds a pickled object that is not plain data (unpickling it
            would import or call code), or it is not a torch checkpoint at all.
    """
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    try:
        checkpoint = torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle.UnpicklingError, RuntimeError for non-zip files, ...
        raise UnsafeCheckpointError(
            f'refused to load checkpoint {filename!r}: it cannot be read with torch.load(weights_only=True) '
            f'({_load_error_reason(err)}). A checkpoint that '
            'needs to run code while unpickling is never loaded. If the file comes from a trusted source (e.g. '
            'a plain MMEngine/MMDetection run), convert it with tools/model_converters/sanitize_checkpoint.py.'
            ) from err
    return restore_checkpoint(checkpoint) if restore else checkpoint


def _load_error_reason(err: Exception) -> str:
    """The informative part of a ``torch.load`` error: what the weights-only unpickler refused (e.g. the
    global), without torch's generic preamble and its advice to allow-list the global."""
    lines = [line.strip() for line in str(err).split('Check the documentation')[0].splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if lines[0].startswith('Weights only load failed') and len(lines) > 1:
        detail = ' '.join(lines[1:])
        marker = 'WeightsUnpickler error:'
        if marker in detail:
            detail = detail.split(marker, 1)[1].strip()
        return 'weights-only unpickler: ' + detail.split('. Please use')[0].rstrip('.')
    return f'{type(err).__name__}: {lines[0]}'


def load_from_safe_local(filename: str, map_location: Optional[Any] = None) -> Any:
    """MMEngine's ``CheckpointLoader`` scheme for local files (the name after ``load_from_`` is what MMEngine
    logs as the backend): :func:`safe_load_checkpoint`."""
    return safe_load_checkpoint(filename, map_location=map_location)


# Key that marks a ``HistoryBuffer`` stored as plain data; its value is the format version.
HISTORY_BUFFER_TAG = '__history_buffer__'


def _history_to_tensor(array: np.ndarray) -> Any:
    array = np.asarray(array)
    try:
        return torch.from_numpy(np.ascontiguousarray(array)).clone()
    except TypeError:  # a dtype torch has no counterpart for: keep the array (allow-listed numeric dtypes)
        return array


def _history_from_tensor(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _plain_history_buffer(buffer: Any) -> dict:
    log_history, count_history = buffer.data
    return {HISTORY_BUFFER_TAG: 1, 'max_length': int(buffer.max_length),
            'log_history': _history_to_tensor(log_history), 'count_history': _history_to_tensor(count_history)}


def sanitize_checkpoint(obj: Any) -> Any:
    """Make a checkpoint loadable with ``torch.load(weights_only=True)`` and no extra allow-listed global.

    Recursively (in place for dicts, so that ``before_save_checkpoint`` hooks can call it on the checkpoint):

    * an MMEngine ``HistoryBuffer`` (the message hub's ``log_scalars``) becomes a plain dict
      ``{'__history_buffer__': 1, 'max_length': int, 'log_history': Tensor, 'count_history': Tensor}``:
      pickling the buffer itself would also pickle its statistics functions, which needs
      ``builtins.getattr`` to load;
    * numpy scalars (e.g. the ``best_score`` of ``CheckpointHook``) become Python numbers.

    :func:`restore_checkpoint` is the inverse for the buffers.

    Args:
        obj: A checkpoint dict or any part of one.

    Returns:
        The sanitized object (the same object for dicts).
    """
    from mmengine.logging import HistoryBuffer
    if isinstance(obj, dict):
        for k in list(obj.keys()):
            obj[k] = sanitize_checkpoint(obj[k])
        return obj
    if isinstance(obj, list):
        return [sanitize_checkpoint(v) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, '_fields'):  # leave namedtuples alone
        return tuple(sanitize_checkpoint(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if type(obj) is HistoryBuffer:  # a subclass may hold more state: leave it to fail loudly on load
        return _plain_history_buffer(obj)
    return obj


def restore_checkpoint(obj: Any) -> Any:
    """Turn the plain-data ``HistoryBuffer``s written by :func:`sanitize_checkpoint` back into
    ``HistoryBuffer`` objects, recursively and in place for dicts. Idempotent; a checkpoint without them is
    returned unchanged.

    Args:
        obj: A loaded checkpoint dict or any part of one.

    Returns:
        The restored object (the same object for dicts).
    """
    if isinstance(obj, dict):
        if obj.get(HISTORY_BUFFER_TAG, None) == 1 and {'log_history', 'count_history'} <= set(obj.keys()):
            from mmengine.logging import HistoryBuffer
            return HistoryBuffer(_history_from_tensor(obj['log_history']),
                                 _history_from_tensor(obj['count_history']),
                                 max_length=int(obj.get('max_length', 1000000)))
        for k in list(obj.keys()):
            obj[k] = restore_checkpoint(obj[k])
        return obj
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            obj[i] = restore_checkpoint(v)
        return obj
    if isinstance(obj, tuple) and not hasattr(obj, '_fields'):
        return tuple(restore_checkpoint(v) for v in obj)
    return obj


def save_converted_checkpoint(dst: str, state_dict: dict, meta: dict, dropped: List[tuple], added: List[str],
                              num_source: int, log=print) -> dict:
    """Write a checkpoint converted from another code base and report what was dropped and added.

    Shared by the converters in ``tools/model_converters/``.

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
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save(out, dst)
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
