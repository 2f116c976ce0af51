"""The writer of the synthetic data sets: written once, atomically, by one process, and reused.

* :func:`write_generated_data` writes a data set under ``root`` unless an identical copy (the same
  ``meta.json``: the generator's arguments) is there, into a locked temporary folder beside ``root`` that is
  moved into place at the end (an interrupted run never leaves a half-written data set behind);
  :func:`remove_stale_temporaries` removes the temporary folders of runs that died;
* :func:`generate_once`: in a distributed run rank 0 generates and the other ranks wait at a barrier (what every
  synthetic dataset class does when it is given ``generate=dict(...)``);
* :func:`dump_json` and :func:`write_lines` write the files as every generator does (compact JSON; one item a
  line with a final newline), so that the same arguments write identical bytes;
* :class:`GenerationProgress`: what is being generated and how far it is (a log line at the start and the end, a
  progress bar over the scenes), started by :func:`write_generated_data` and advanced by :func:`scene_written`,
  which every scene loop calls (:func:`~mmvlg.datasets.synthetic.scenes.render_scenes`, SynthRef's own).
"""
import json
import os
import os.path as osp
import re
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

try:
    import fcntl
except ImportError:  # not POSIX: temporary folders are judged by their age only
    fcntl = None

__all__ = ['WRITER_LOCK', 'UNLOCKED_STALE_AFTER_S', 'hold_writer_lock', 'remove_stale_temporaries',
           'write_generated_data', 'generate_once', 'dump_json', 'write_lines', 'GenerationProgress',
           'scene_written']


# The lock file of a generator's temporary folder, held (flock) while it writes: a temporary folder whose lock
# nobody holds was left behind by a run that died.
WRITER_LOCK = '.writer.lock'
# A temporary folder without a lock file (written by an mmvlg version without locks) is stale after this long.
UNLOCKED_STALE_AFTER_S = 3600.0


def hold_writer_lock(tmp: str) -> Optional[int]:
    """Lock ``tmp/WRITER_LOCK`` for this process (the descriptor; None without ``fcntl``). The file is locked
    under another name and then renamed, so that nobody ever finds it unlocked while the writer lives."""
    if fcntl is None:
        return None
    partial = osp.join(tmp, WRITER_LOCK + '.partial')
    fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(partial, osp.join(tmp, WRITER_LOCK))
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_stale_temporaries(parent: str, tmp_prefix: str, stale_after_s: float = UNLOCKED_STALE_AFTER_S
                             ) -> List[str]:
    """Remove the temporary folders that runs of one generator left in ``parent`` when they died.

    Only folders named as this generator names them (``tmp_prefix`` and the 8 random characters of
    ``tempfile.mkdtemp``, so ``'.synthref-'`` does not match the ``'.synthref-captions-'`` folders) are
    considered. A folder whose :data:`WRITER_LOCK` is held belongs to a live writer (another process or rank
    generating at the same time) and is kept; one whose lock can be taken is stale. A folder without a lock
    file (an older mmvlg, or a writer between ``mkdtemp`` and its lock) is stale only when it has not changed
    for ``stale_after_s`` seconds.

    Returns:
        list[str]: The removed folders.
    """
    pattern = re.compile(re.escape(tmp_prefix) + r'[a-z0-9_]{8}')
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    removed = []
    for name in sorted(names):
        path = osp.join(parent, name)
        if not pattern.fullmatch(name) or osp.islink(path) or not osp.isdir(path):
            continue
        lock = osp.join(path, WRITER_LOCK)
        if fcntl is not None and osp.isfile(lock):
            try:
                fd = os.open(lock, os.O_RDWR)
            except OSError:  # removed meanwhile (its writer finished, or another cleaner)
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # a live writer holds it
                    continue
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            finally:
                os.close(fd)
        else:
            try:
                age = time.time() - os.stat(path).st_mtime
            except OSError:
                continue
            if age > stale_after_s:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


class GenerationProgress:
    """The progress of one generated data set, in scenes: a log line with what is generated where (splits and
    scene counts), a progress bar (:class:`mmengine.utils.ProgressBar` on a terminal; elsewhere, e.g. a log
    file, one log line each ``log_every`` of the scenes), and a log line with the time it took.

    Args:
        what (str): The data set's name, e.g. ``'a SynthRef'``.
        root (str): Where it goes.
        num_scenes (dict): Split -> number of scenes.
        log_every (float): The fraction of the scenes between two progress lines without a terminal (only for
            sets of ``min_scenes_to_log`` scenes or more; the start and end lines are always written).
    """
    min_scenes_to_log = 100

    def __init__(self, what: str, root: str, num_scenes: Dict[str, int], log_every: float = 0.1) -> None:
        from mmengine.logging import print_log
        self._log = lambda msg: print_log(msg, logger='current')
        self.what, self.total, self.done = what, max(1, sum(int(n) for n in num_scenes.values())), 0
        self.name = re.sub(r'^(a|an) ', '', what)
        self.start = time.monotonic()
        self.step = max(1, int(self.total * log_every))
        splits = ', '.join(f'{split} {n}' for split, n in num_scenes.items())
        self._log(f'generating {what} under {osp.abspath(root)} (first use; reused afterwards): '
                  f'{self.total} scenes ({splits})')
        self._bar = None
        if getattr(sys.stdout, 'isatty', lambda: False)():
            from mmengine.utils import ProgressBar
            self._bar = ProgressBar(self.total)

    def update(self, n: int = 1) -> None:
        """``n`` more scenes written."""
        before, self.done = self.done, min(self.total, self.done + n)
        if self._bar is not None:
            for _ in range(self.done - before):
                self._bar.update()
        elif (self.total >= self.min_scenes_to_log and self.done // self.step > before // self.step
              and self.done < self.total):
            elapsed = time.monotonic() - self.start
            self._log(f'{self.name}: {self.done}/{self.total} scenes ({100 * self.done // self.total}%), '
                      f'{elapsed:.0f} s, about {elapsed * (self.total - self.done) / self.done:.0f} s left')

    def finish(self) -> None:
        if self._bar is not None:
            sys.stdout.write('\n')
            sys.stdout.flush()
        self._log(f'{self.name}: {self.done} scenes generated in {time.monotonic() - self.start:.1f} s')


_ACTIVE: List[GenerationProgress] = []


def scene_written(n: int = 1) -> None:
    """Advance the progress of the data set being generated (nothing outside :func:`write_generated_data`)."""
    if _ACTIVE:
        _ACTIVE[-1].update(n)


def _same_meta(meta_file: str, meta: dict) -> bool:
    try:
        with open(meta_file) as f:
            return json.load(f) == meta
    except (OSError, ValueError):
        return False


def write_generated_data(root: str, meta: dict, write: Callable[[str], None], what: str, tmp_prefix: str,
                         force: bool = False) -> str:
    """Write a generated data set under ``root`` once: skip when ``root/meta.json`` equals ``meta``, refuse
    (``FileExistsError``) when it holds other arguments unless ``force``. ``write(tmp)`` fills a temporary folder
    beside ``root`` (with an ``annotations`` subfolder already made) that is moved into place at the end, so an
    interrupted run never leaves a half-written data set behind. ``what`` names the data set in the error.

    The temporary folder is named ``tmp_prefix`` + 8 random characters and holds a locked :data:`WRITER_LOCK`
    while it is written; every call first removes the stale temporary folders of the same generator
    (:func:`remove_stale_temporaries`), e.g. those of a run killed before it could clean up. When another
    process finishes the same data set first, its copy is kept.

    Returns:
        str: ``root``.
    """
    meta = json.loads(json.dumps(meta))  # tuples become lists, as read back from meta.json
    meta_file = osp.join(root, 'meta.json')
    parent = osp.dirname(osp.abspath(root))
    removed = remove_stale_temporaries(parent, tmp_prefix)
    if removed:
        from mmengine.logging import print_log
        print_log(f'removed {len(removed)} stale temporary folder(s) of interrupted {what} generation: '
                  f'{", ".join(removed)}', logger='current')
    if not force and osp.isfile(meta_file):
        if _same_meta(meta_file, meta):
            return root
        raise FileExistsError(
            f'{root!r} holds {what} generated with other arguments ({meta_file}); remove it, choose '
            'another root or pass force=True to overwrite it')
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=tmp_prefix, dir=parent)
    lock_fd = None
    num_scenes = meta.get('num_scenes')
    progress = GenerationProgress(what, root, num_scenes if isinstance(num_scenes, dict) else {'all': 0})
    _ACTIVE.append(progress)
    try:
        lock_fd = hold_writer_lock(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes a private (0700) folder; use the usual permissions
        os.makedirs(osp.join(tmp, 'annotations'))
        write(tmp)
        _ACTIVE.remove(progress)
        progress.finish()
        with open(osp.join(tmp, 'meta.json'), 'w') as f:
            json.dump(meta, f, indent=1)
        if lock_fd is not None:
            os.remove(osp.join(tmp, WRITER_LOCK))  # not part of the data (still held until the folder is moved)
        if not force and _same_meta(meta_file, meta):
            return root  # another process wrote the same data set meanwhile
        if osp.exists(root):
            shutil.rmtree(root)
        try:
            os.replace(tmp, root)
        except OSError:
            if not _same_meta(meta_file, meta):  # not another process's identical copy that just landed
                raise
    finally:
        if progress in _ACTIVE:
            _ACTIVE.remove(progress)
        if osp.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        if lock_fd is not None:
            os.close(lock_fd)
    return root


def generate_once(generate: Callable[[], Any]) -> None:
    """Run ``generate()`` on rank 0 only, then wait until it is done on every rank (``mmengine.dist.barrier``;
    outside a distributed run: just ``generate()``). The generators skip an identical existing copy, so every
    run may call this."""
    from mmengine.dist import barrier, get_rank
    if get_rank() == 0:
        generate()
    barrier()


def dump_json(obj: Any, path: str) -> None:
    """Write ``obj`` as compact JSON (``json.dump`` defaults) to ``path``."""
    with open(path, 'w') as f:
        json.dump(obj, f)


def write_lines(lines: Iterable[str], path: str) -> None:
    """Write one item a line, with a final newline (e.g. ``vocab.txt``, ``answer_list.txt``)."""
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
