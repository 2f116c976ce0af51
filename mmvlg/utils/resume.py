"""Which checkpoint ``resume=True`` continues from, when ``last_checkpoint`` cannot be trusted.

MMEngine resumes from the file named in ``<work_dir>/last_checkpoint`` and, when that file is missing,
silently trains from scratch. :func:`find_resume_checkpoint` (installed as MMEngine's
``find_latest_checkpoint`` by :func:`mmvlg.utils.register_checkpoint_safe_globals`) also handles a
``last_checkpoint`` that is missing, empty, or names a file that is gone or unreadable (a save killed
mid-write, before mmvlg made saves atomic): it takes the newest readable ``*.pth`` of the work dir, says so,
and stops with an error when the work dir holds checkpoints but none of them is readable.
"""
import glob
import os.path as osp
import zipfile
from typing import List, Optional

from mmengine.logging import print_log


def is_readable_checkpoint(path: str) -> bool:
    """A cheap structural check: the file is a complete zip archive as ``torch.save`` writes it (its central
    directory, at the very end of the file, is intact and names a pickle). A truncated file fails it."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(name.endswith('data.pkl') for name in zf.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _checkpoints_in(work_dir: str) -> List[str]:
    files = [f for f in glob.glob(osp.join(work_dir, '*.pth')) if osp.isfile(f)]
    return sorted(files, key=lambda f: (osp.getmtime(f), f), reverse=True)


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint to resume from in ``work_dir``, or None when it holds no checkpoint.

    Args:
        work_dir (str): The run's work dir.

    Returns:
        str | None: The path named by ``last_checkpoint`` if that file is readable; otherwise the newest
        readable ``*.pth`` in ``work_dir`` (with a warning naming what was skipped); None when ``work_dir``
        has no ``*.pth`` at all.

    Raises:
        RuntimeError: ``work_dir`` holds checkpoints, but none of them is readable.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip() or None
        if named is not None and osp.isfile(named) and is_readable_checkpoint(named):
            return named
    candidates = _checkpoints_in(work_dir)
    if not candidates:
        if named is not None:
            raise RuntimeError(f'{pointer} names {named!r}, which does not exist, and {work_dir} holds no other '
                               'checkpoint: nothing to resume from (remove last_checkpoint to start over)')
        print_log(f'No checkpoint in {work_dir} to resume from: training starts from the beginning.',
                  logger='current')
        return None
    broken = [c for c in candidates if not is_readable_checkpoint(c)]
    readable = [c for c in candidates if c not in broken]
    if not readable:
        raise RuntimeError(
            f'refusing to start over in {work_dir}: it holds checkpoints, but none is readable (truncated or '
            f'corrupt: {", ".join(osp.basename(c) for c in broken)}). Remove them to train from scratch, or '
            'resume from a good copy with --resume PATH.')
    why = ('has no last_checkpoint' if not osp.isfile(pointer) else
           'has an empty last_checkpoint' if named is None else
           f'has a last_checkpoint naming {named!r}, which is missing or unreadable')
    print_log(f'{work_dir} {why}: resuming from the newest readable checkpoint, {readable[0]}'
              + (f' (skipped unreadable: {", ".join(osp.basename(c) for c in broken)})' if broken else ''),
              logger='current', level=30)
    return readable[0]


def register_resume_checkpoint_finder() -> None:
    """Make MMEngine's ``Runner`` (``resume=True`` without ``load_from``) use :func:`find_resume_checkpoint`.
    Idempotent."""
    from mmengine.runner import runner as runner_module
    runner_module.find_latest_checkpoint = find_resume_checkpoint
