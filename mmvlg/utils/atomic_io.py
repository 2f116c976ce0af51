"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half of one.

A file is written to a temporary file in the same folder, flushed and ``fsync``-ed, then renamed over the
target with :func:`os.replace` (atomic on POSIX and Windows for a rename within one file system), and the
folder is ``fsync``-ed so that the rename survives a power cut. A process killed mid-write leaves at most a
``.<name>.tmp-<pid>-<n>`` file behind, which never has a checkpoint's name and is removed by the next
:func:`atomic_write_bytes` into the same folder once its writer is gone.

:func:`register_atomic_local_backend` makes MMEngine's local file backend (which ``Runner.save_checkpoint``
and ``CheckpointHook`` write through) and ``CheckpointHook``'s ``last_checkpoint`` file use these writes.
"""
import contextlib
import io
import itertools
import os
import os.path as osp
import re
from typing import IO, Iterator, Union

from mmengine.fileio.backends import LocalBackend

_counter = itertools.count()
_TMP_RE = re.compile(r'^\..+\.tmp-(\d+)-\d+$')


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str) -> int:
    """Remove the temporary files that writers killed mid-write left in ``folder``.

    Only files named as :func:`atomic_write` names them (``.<name>.tmp-<pid>-<n>``) whose writing process no
    longer exists are removed.

    Returns:
        int: How many files were removed.
    """
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        m = _TMP_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            try:
                os.remove(osp.join(folder, name))
                removed += 1
            except OSError:
                pass
    return removed


@contextlib.contextmanager
def atomic_write(path: Union[str, os.PathLike], mode: str = 'wb', encoding: str = 'utf-8') -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` when the ``with`` block ends without error.

    Args:
        path: The file to write (its folder is created).
        mode (str): ``'wb'`` or ``'w'``.
        encoding (str): Text encoding for ``'w'``.

    Yields:
        The open temporary file. If the block raises, the temporary file is removed and ``path`` is left
        as it was.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f'atomic_write: mode must be "w" or "wb", got {mode!r}')
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.tmp-{os.getpid()}-{next(_counter)}')
    f = open(tmp, mode, **({} if 'b' in mode else dict(encoding=encoding)))
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, path)
    except BaseException:
        f.close()
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def atomic_write_bytes(path: Union[str, os.PathLike], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    remove_stale_temporaries(osp.dirname(osp.abspath(os.fspath(path))))
    with atomic_write(path, 'wb') as f:
        f.write(data)


def atomic_write_text(path: Union[str, os.PathLike], text: str, encoding: str = 'utf-8') -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, 'w', encoding=encoding) as f:
        f.write(text)


def atomic_torch_save(obj, path: Union[str, os.PathLike]) -> None:
    """``torch.save(obj, path)``, atomically."""
    import torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _atomic_text_open(file, mode='r', *args, **kwargs):
    """``open`` for ``mmengine.hooks.checkpoint_hook``: its one write, ``last_checkpoint`` in mode ``'w'``,
    becomes an atomic write; everything else is the built-in ``open``."""
    if mode == 'w' and not args and set(kwargs) <= {'encoding'}:
        return atomic_write(file, 'w', encoding=kwargs.get('encoding') or 'utf-8')
    return open(file, mode, *args, **kwargs)


def register_atomic_local_backend() -> None:
    """Make MMEngine's local writes atomic. Idempotent.

    * the ``'local'`` file backend (``put``/``put_text``, used by ``Runner.save_checkpoint`` for every
      checkpoint and by ``CheckpointHook`` for ``best_*.pth`` bookkeeping) writes through
      :func:`atomic_write`;
    * ``CheckpointHook`` writes ``last_checkpoint`` through :func:`atomic_write` (its module's ``open`` is
      shadowed by :func:`_atomic_text_open`, which passes every other call to the built-in ``open``).
    """
    from mmengine.fileio.backends import LocalBackend, register_backend, registry_utils
    from mmengine.hooks import checkpoint_hook

    if registry_utils.prefix_to_backends.get('') is not AtomicLocalBackend:
        register_backend('local', AtomicLocalBackend, force=True, prefixes='')
        # Instances made before (cached by get_file_backend) keep the old class: switch them over.
        from mmengine.fileio import io as fileio_io
        for backend in list(getattr(fileio_io, 'backend_instances', {}).values()):
            if type(backend) is LocalBackend:
                backend.__class__ = AtomicLocalBackend
    checkpoint_hook.open = _atomic_text_open


class AtomicLocalBackend(LocalBackend):
    """MMEngine's ``LocalBackend`` whose ``put`` and ``put_text`` write atomically (see :func:`atomic_write`)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write_text(filepath, obj, encoding=encoding)
