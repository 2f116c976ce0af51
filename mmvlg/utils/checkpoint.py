"""Safe checkpoint loading on torch >= 2.6.

``torch.load`` defaults to ``weights_only=True`` since torch 2.6, which refuses any pickled global that is
not on an allow-list. MMEngine's own checkpoints carry a few such globals (the message hub's
``HistoryBuffer`` and the numpy arrays/scalars inside it), so ``resume`` and ``load_from`` fail out of the
box. This module allow-lists exactly those data-only types and nothing that can call arbitrary code: in
particular ``builtins.getattr`` is *not* allowed (with it, a pickle can reach bound methods such as
``ndarray.tofile``). :func:`sanitize_checkpoint` is used when saving so that mmvlg checkpoints never need it.

Every checkpoint, ours or a third party's, is therefore loaded with ``weights_only=True``; a file whose
unpickling would run code is refused with an error that names the file.
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
    CheckpointLoader.register_scheme(prefixes='', force=True)(_load_local)


def safe_load_checkpoint(filename: str, map_location: Optional[Any] = 'cpu') -> Any:
    """Load a checkpoint file with ``weights_only=True``.

    Args:
        filename (str): Path of the checkpoint.
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.

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
        return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle.UnpicklingError, RuntimeError for non-zip files, ...
        raise UnsafeCheckpointError(
            f'refused to load checkpoint {filename!r}: it cannot be read with torch.load(weights_only=True) '
            f'({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ""}). A checkpoint that '
            'needs to run code while unpickling is never loaded. If it is a trusted checkpoint of another '
            'code base, convert it with the tools in tools/model_converters/.') from err


def _load_local(filename: str, map_location: Optional[Any] = None) -> Any:
    return safe_load_checkpoint(filename, map_location=map_location)


def sanitize_checkpoint(obj: Any) -> Any:
    """Turn numpy scalars in a checkpoint into Python numbers (recursively, in place for dicts/lists), so
    that the saved file only needs :data:`SAFE_CHECKPOINT_GLOBALS` to load."""
    if isinstance(obj, dict):
        for k in list(obj.keys()):
            obj[k] = sanitize_checkpoint(obj[k])
        return obj
    if isinstance(obj, list):
        return [sanitize_checkpoint(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(sanitize_checkpoint(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


