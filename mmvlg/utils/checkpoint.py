"""Safe checkpoint loading on torch >= 2.6, from every source MMEngine knows.

``torch.load`` defaults to ``weights_only=True`` since torch 2.6, which refuses any pickled global that is
not on an allow-list, but MMEngine's own loaders for URLs (``http(s)://``, ``torchvision://``,
``open-mmlab://``, ``mmcls://``) go through ``torch.hub.load_state_dict_from_url``, which unpickles with
``weights_only=False``: a file served from a URL, or planted in the hub cache, could run code. mmvlg replaces
every scheme of MMEngine's ``CheckpointLoader`` on import (:func:`register_checkpoint_safe_globals`) with a
loader that reads the bytes the same way (download to the same cache, or the file backend) and then
unpickles them with ``weights_only=True``; a scheme registered by other code runs with
``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` set, so that its ``torch.load`` cannot unpickle code either.

What MMEngine's checkpoints hold besides tensors is allow-listed as data only:

* the message hub's ``HistoryBuffer`` and the numpy arrays, dtypes and scalars inside it (under both
  ``numpy._core`` and numpy 1.x's ``numpy.core`` names);
* ``builtins.getattr`` as written by pickle for ``HistoryBuffer``'s statistics functions
  (``HistoryBuffer.__getstate__`` stores ``{'min': HistoryBuffer.min, ...}``, which pickle writes as
  ``getattr(HistoryBuffer, 'min')``). The name ``builtins.getattr`` is bound to :func:`_history_buffer_getattr`,
  which returns exactly those four functions and refuses any other object or attribute, so a crafted file
  cannot reach a bound method such as ``ndarray.tofile`` through it.

So a checkpoint written by a plain MMEngine or MMDetection run loads as it is. mmvlg's own checkpoints need
none of this: every ``Runner`` in a process that imports mmvlg runs :func:`sanitize_checkpoint` on the
checkpoint right before it is pickled (:func:`register_sanitizing_checkpoint_save`; no hook needed in the
config, :class:`~mmvlg.engine.hooks.SafeCheckpointHook` does the same and stays for configs that name it),
which stores each ``HistoryBuffer`` as plain data (its histories as tensors) and numpy scalars as Python
numbers; :func:`restore_checkpoint` (run by :func:`safe_load_checkpoint` and by the hook after loading) turns
them back into ``HistoryBuffer``s.

A file that cannot be read is reported as one of two errors, never confused: :class:`UnsafeCheckpointError`
(the unpickler met a global that is not allow-listed: loading it would import or call code) and
:class:`CorruptCheckpointError` (truncated, empty, or not a PyTorch file at all).
"""
import contextlib
import functools
import io
import os
import os.path as osp
import pickle
from typing import Any, Callable, Dict, List, Optional, Union
from urllib.parse import urlparse

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


# The statistics functions HistoryBuffer registers itself; the only attributes _history_buffer_getattr gives.
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'mean', 'current')


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """What ``builtins.getattr`` means inside a checkpoint: only ``getattr(HistoryBuffer, <statistic>)``.

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and isinstance(name, str) and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: builtins.getattr({getattr(obj, "__qualname__", type(obj).__name__)}, {name!r}); '
        'mmvlg allows getattr only for the statistics functions of mmengine HistoryBuffer')


def _safe_globals() -> List[Any]:
    from mmengine.logging.history_buffer import HistoryBuffer
    plain = [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype, *_numpy_dtype_classes()]
    aliases = [(_history_buffer_getattr, 'builtins.getattr')]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):  # files written by numpy 1.x and 2.x
        aliases += [(_reconstruct, f'{module}._reconstruct'), (scalar, f'{module}.scalar')]
    return plain + aliases


SAFE_CHECKPOINT_GLOBALS = _safe_globals()


class CheckpointLoadError(RuntimeError):
    """A checkpoint could not be loaded. The message names the file."""


class UnsafeCheckpointError(CheckpointLoadError):
    """The checkpoint holds a pickled object that is not plain data: unpickling it would import or call
    code, so it is refused (``weights_only=True``)."""


class CorruptCheckpointError(CheckpointLoadError):
    """The file is truncated, empty or not a PyTorch checkpoint at all."""


# What the weights-only unpickler says when it meets code (a global it does not allow, a call, a build of an
# unknown type); anything else it says (and every other error) means a broken file.
_UNSAFE_MARKERS = ('global', 'unsupported class', 'blocked', 'reduce', 'can only build', 'unsupported type',
                   'not an allowed')


def _classify_load_error(err: BaseException) -> str:
    """``'unsafe'`` when the weights-only unpickler refused code, ``'corrupt'`` for anything else."""
    if isinstance(err, pickle.UnpicklingError) and 'Weights only load failed' in str(err):
        return 'unsafe' if any(m in str(err).lower() for m in _UNSAFE_MARKERS) else 'corrupt'
    return 'corrupt'


def _describe(source: Union[str, 'os.PathLike', io.IOBase]) -> str:
    return repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else 'from a stream'


def safe_load_checkpoint(filename: Union[str, 'os.PathLike', io.IOBase], map_location: Optional[Any] = 'cpu',
                         restore: bool = True, name: Optional[str] = None) -> Any:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    Args:
        filename (str | file-like): Path of the checkpoint, or an open binary stream (``io.BytesIO``).
        map_location: Passed to :func:`torch.load`. Defaults to ``'cpu'``.
        restore (bool): Whether to turn the plain-data message-hub buffers written by
            :func:`sanitize_checkpoint` back into ``HistoryBuffer`` objects (see :func:`restore_checkpoint`).
            Defaults to True.
        name (str, optional): How to name the checkpoint in errors (e.g. its URL). Defaults to the path.

    Returns:
        The unpickled object (usually a dict with ``state_dict``/``meta``/...).

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file holds a pickled object that is not plain data.
        CorruptCheckpointError: The file is truncated, empty or not a PyTorch checkpoint.
    """
    if isinstance(filename, (str, os.PathLike)):
        filename = osp.expanduser(os.fspath(filename))
        if not osp.isfile(filename):
            raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    what = name or _describe(filename)
    try:
        checkpoint = torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle.UnpicklingError, RuntimeError for broken zip files, EOFError, ...
        if _classify_load_error(err) == 'unsafe':
            raise UnsafeCheckpointError(
                f'refused to load checkpoint {what}: it cannot be read with torch.load(weights_only=True) '
                f'({_load_error_reason(err)}). A checkpoint that needs to run code while unpickling is never '
                'loaded. Only if the file comes from a source you trust, convert it with '
                'tools/model_converters/sanitize_checkpoint.py --trust-source.') from err
        size = osp.getsize(filename) if isinstance(filename, str) else None
        raise CorruptCheckpointError(
            f'checkpoint {what} is not a readable PyTorch checkpoint'
            f'{" (the file is empty)" if size == 0 else ""}: {_load_error_reason(err)}. It is probably '
            'truncated (an interrupted download or save) or not a checkpoint at all: download or save it '
            'again.') from err
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
    return f'{type(err).__name__}: {lines[0].split(". This is an internal")[0]}'


# ---------------------------------------------------------------------------------------------------------
# MMEngine CheckpointLoader schemes. The function names after ``load_from_`` are what MMEngine logs as the
# backend. Each reads the bytes where MMEngine's own loader reads them and unpickles with weights_only=True.


def load_from_safe_local(filename: str, map_location: Optional[Any] = None) -> Any:
    """Local files: :func:`safe_load_checkpoint`."""
    return safe_load_checkpoint(filename, map_location=map_location)


def _download_to_cache(url: str, model_dir: Optional[str] = None) -> str:
    """The hub-cache copy of ``url`` (``$TORCH_HOME/hub/checkpoints/<file name>``, where
    ``torch.hub.load_state_dict_from_url`` keeps it), downloaded first if it is not there. In distributed
    runs the local rank 0 downloads and the others wait."""
    from mmengine.dist import barrier, get_dist_info
    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, osp.basename(urlparse(url).path) or 'checkpoint.pth')
    rank, world_size = get_dist_info()

    def fetch():
        if not osp.isfile(cached):
            try:
                torch.hub.download_url_to_file(url, cached, progress=False)
            except Exception as err:
                raise CheckpointLoadError(
                    f'could not download checkpoint {url!r} to {cached!r} ({type(err).__name__}: {err}). '
                    'Offline? Download it elsewhere and give the local path instead.') from err

    if rank == 0:
        fetch()
    if world_size > 1:
        barrier()
        if rank > 0:
            fetch()
    return cached


def load_from_safe_http(filename: str, map_location: Optional[Any] = None, model_dir: Optional[str] = None) -> Any:
    """``http://`` and ``https://``: download into the hub cache, then :func:`safe_load_checkpoint`."""
    cached = _download_to_cache(filename, model_dir)
    return safe_load_checkpoint(cached, map_location=map_location, name=f'{filename!r} (cached as {cached!r})')


def load_from_safe_torchvision(filename: str, map_location: Optional[Any] = None) -> Any:
    """``torchvision://NAME`` (and the deprecated ``modelzoo://NAME``): torchvision's URL for NAME."""
    from mmengine.runner.checkpoint import get_torchvision_models
    name = filename.split('://', 1)[1]
    urls = get_torchvision_models()
    if name not in urls:
        raise KeyError(f'{filename!r}: torchvision has no model {name!r}')
    return load_from_safe_http(urls[name], map_location=map_location)


def load_from_safe_openmmlab(filename: str, map_location: Optional[Any] = None) -> Any:
    """``open-mmlab://NAME`` and ``openmmlab://NAME``: the URL (or the file under the MMEngine home) that
    MMEngine's model list gives for NAME."""
    from mmengine.runner.checkpoint import _get_mmengine_home, get_deprecated_model_names, get_external_models
    name = filename.split('://', 1)[1]
    name = get_deprecated_model_names().get(name, name)
    urls = get_external_models()
    if name not in urls:
        raise KeyError(f'{filename!r}: no OpenMMLab model named {name!r}')
    url = urls[name]
    if url.startswith(('http://', 'https://')):
        return load_from_safe_http(url, map_location=map_location)
    return safe_load_checkpoint(osp.join(_get_mmengine_home(), url), map_location=map_location)


def load_from_safe_mmcls(filename: str, map_location: Optional[Any] = None) -> Any:
    """``mmcls://NAME``: MMClassification's URL for NAME, with its keys renamed as MMEngine does."""
    from mmengine.runner.checkpoint import _process_mmcls_checkpoint, get_mmcls_models
    name = filename[len('mmcls://'):]
    urls = get_mmcls_models()
    if name not in urls:
        raise KeyError(f'{filename!r}: no MMClassification model named {name!r}')
    return _process_mmcls_checkpoint(load_from_safe_http(urls[name], map_location=map_location))


def load_from_safe_pavi(filename: str, map_location: Optional[Any] = None) -> Any:
    """``pavi://PATH``: download from the model cloud to a temporary folder, then
    :func:`safe_load_checkpoint`."""
    import tempfile
    try:
        from pavi import modelcloud
    except ImportError as err:
        raise ImportError(f'{filename!r}: install pavi to load checkpoints from its model cloud') from err
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp_dir:
        local = osp.join(tmp_dir, model.name)
        model.download(local)
        return safe_load_checkpoint(local, map_location=map_location, name=repr(filename))


def load_from_safe_ceph(filename: str, map_location: Optional[Any] = None, backend: str = 'petrel') -> Any:
    """``s3://`` and ``petrel://`` (optionally ``NAME:s3://``): the bytes from MMEngine's file backend."""
    from mmengine.fileio import get_file_backend
    data = get_file_backend(filename, backend_args=dict(backend=backend)).get(filename)
    with io.BytesIO(data) as buffer:
        return safe_load_checkpoint(buffer, map_location=map_location, name=repr(filename))


SAFE_SCHEMES: Dict[Any, Callable] = {
    '': load_from_safe_local,
    ('http://', 'https://'): load_from_safe_http,
    ('modelzoo://', 'torchvision://'): load_from_safe_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_safe_openmmlab,
    'mmcls://': load_from_safe_mmcls,
    'pavi://': load_from_safe_pavi,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_safe_ceph,
}
_SAFE_LOADERS = frozenset(SAFE_SCHEMES.values())


@contextlib.contextmanager
def force_weights_only_load():
    """Within the block, every ``torch.load`` unpickles with ``weights_only=True``, even where the caller
    passes ``weights_only=False`` (torch's ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``)."""
    saved = {k: os.environ.get(k) for k in ('TORCH_FORCE_WEIGHTS_ONLY_LOAD', 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')}
    os.environ['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = '1'
    os.environ.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _safe_checkpoint_loader_load(cls, filename, map_location=None, logger='current'):
    """``CheckpointLoader.load_checkpoint`` as mmvlg installs it: mmvlg's loaders as they are, any other
    registered loader under :func:`force_weights_only_load`."""
    from mmengine.logging import print_log
    loader = cls._get_checkpoint_loader(filename)
    print_log(f'Loads checkpoint by {loader.__name__[10:]} backend from path: {filename}', logger=logger)
    if loader in _SAFE_LOADERS:
        return loader(filename, map_location)
    with force_weights_only_load():
        try:
            return loader(filename, map_location)
        except pickle.UnpicklingError as err:
            raise UnsafeCheckpointError(f'refused to load checkpoint {filename!r} (loader {loader.__name__}): '
                                        f'{_load_error_reason(err)}') from err


def _sanitizing_save_checkpoint(save: Callable) -> Callable:
    """``save`` (MMEngine's ``save_checkpoint(checkpoint, filename, ...)``) that first applies
    :func:`sanitize_checkpoint` to the checkpoint dict, after every ``before_save_checkpoint`` hook ran."""

    @functools.wraps(save)
    def save_checkpoint(checkpoint: dict, *args, **kwargs):
        return save(sanitize_checkpoint(checkpoint), *args, **kwargs)

    save_checkpoint._mmvlg_sanitizing = True
    return save_checkpoint


def register_sanitizing_checkpoint_save() -> None:
    """Make every MMEngine ``Runner`` write sanitized checkpoints (:func:`sanitize_checkpoint`: the message
    hub's ``HistoryBuffer``s as plain data, numpy scalars as Python numbers), with or without
    :class:`~mmvlg.engine.hooks.SafeCheckpointHook` in ``custom_hooks``: the name ``save_checkpoint`` that
    ``mmengine.runner.runner`` imported from ``mmengine.runner.checkpoint`` (what ``Runner.save_checkpoint`` calls
    after the ``before_save_checkpoint`` hooks) is replaced by a wrapper. Idempotent."""
    from mmengine.runner import runner as runner_module
    if not getattr(runner_module.save_checkpoint, '_mmvlg_sanitizing', False):
        runner_module.save_checkpoint = _sanitizing_save_checkpoint(runner_module.save_checkpoint)


def register_checkpoint_safe_globals() -> None:
    """Allow-list the data-only globals of MMEngine checkpoints, route every scheme of MMEngine's
    ``CheckpointLoader`` through a ``weights_only=True`` loader, let every ``Runner`` save sanitized checkpoints
    (:func:`register_sanitizing_checkpoint_save`), make MMEngine's local checkpoint writes atomic
    (:func:`mmvlg.utils.atomic_io.register_atomic_local_backend`) and let ``resume=True`` skip unreadable
    checkpoints (:func:`mmvlg.utils.resume.find_resume_checkpoint`). Idempotent."""
    torch.serialization.add_safe_globals(SAFE_CHECKPOINT_GLOBALS)
    from mmengine.runner.checkpoint import CheckpointLoader
    for prefixes, loader in SAFE_SCHEMES.items():
        CheckpointLoader.register_scheme(prefixes=list(prefixes) if isinstance(prefixes, tuple) else prefixes,
                                         loader=loader, force=True)
    CheckpointLoader.load_checkpoint = classmethod(_safe_checkpoint_loader_load)
    register_sanitizing_checkpoint_save()
    from .atomic_io import register_atomic_local_backend
    from .resume import register_resume_checkpoint_finder
    register_atomic_local_backend()
    register_resume_checkpoint_finder()


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


# Lives in mmvlg.utils.converters with the other converter utilities; importable from here too.
from .converters import save_converted_checkpoint  # noqa: E402,F401
