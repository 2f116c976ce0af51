"""Bit-identical resume: the random state of training goes into every checkpoint and comes back on resume."""
import random
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmvlg.registry import HOOKS

RANDOM_STATE_KEY = 'random_state'


def capture_random_state() -> Dict[str, Any]:
    """The states of Python's ``random``, ``numpy.random``, torch's CPU generator and (once CUDA is in use)
    every CUDA generator, as plain data that ``torch.load(weights_only=True)`` reads without any extra
    global (numbers and tensors only)."""
    py_version, py_state, py_gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state = dict(
        python=dict(version=int(py_version), state=torch.tensor(py_state, dtype=torch.int64), gauss=py_gauss),
        numpy=dict(keys=torch.from_numpy(np_keys.astype(np.int64)), pos=int(np_pos), has_gauss=int(np_has_gauss),
                   cached_gaussian=float(np_cached)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_random_state(state: Dict[str, Any]) -> None:
    """Set the generators to a state from :func:`capture_random_state`."""
    py = state['python']
    random.setstate((py['version'], tuple(int(v) for v in py['state'].tolist()), py['gauss']))
    npy = state['numpy']
    np.random.set_state(('MT19937', npy['keys'].numpy().astype(np.uint32), npy['pos'], npy['has_gauss'],
                         npy['cached_gaussian']))
    torch.set_rng_state(state['torch'].cpu())
    if state.get('cuda') and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']][:torch.cuda.device_count()])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Make a resumed run draw the same random numbers as the run that was not interrupted.

    MMEngine's checkpoints keep the weights, the optimizer, the schedulers and the sampler's position but not
    the random generators, and a resumed runner seeds them anew from the config: dropout masks and flips of
    the resumed epochs differ from those of an uninterrupted run. This hook

    * takes a snapshot of the generators (Python, numpy, torch CPU and CUDA; see
      :func:`capture_random_state`) at the end of every training iteration, writes the latest snapshot into
      every checkpoint (``checkpoint['random_state']``) and, on resume, puts it back before the first resumed
      epoch/iteration (after the runner's re-seeding);
    * puts the snapshot back after every validation during training as well, so that validation (whose
      dataloader draws a seed) and anything between the checkpoint and the next epoch do not shift the
      training stream: the uninterrupted run continues from exactly the state a resumed one restores;
    * turns on per-sample seeding of the training data pipeline
      (:class:`~mmvlg.datasets.seeding.SampleSeedingMixin`; ``per_sample_seeding=True``): the random draws
      of a sample depend only on the seed, the epoch and the sample, not on dataloader workers, whose
      state no checkpoint can hold (``persistent_workers=True`` keeps it across epochs).

    ``tools/train.py`` adds this hook when the config has none. With distributed training every rank
    restores rank 0's snapshot (the one in the checkpoint): exact when the ranks share a seed (MMEngine's
    default ``randomness.diff_rank_seed=False``).

    Args:
        per_sample_seeding (bool): Seed the training pipeline per sample. Defaults to True. Data sets that are
            not mmvlg's (without :class:`~mmvlg.datasets.seeding.SampleSeedingMixin`) keep MMEngine's worker
            seeding, and a warning says that their augmentation is not resumed exactly.
    """

    priority = 'VERY_HIGH'  # snapshot before CheckpointHook saves; restore before SiRiHook re-initializes

    def __init__(self, per_sample_seeding: bool = True) -> None:
        self.per_sample_seeding = per_sample_seeding
        self._snapshot: Optional[Dict[str, Any]] = None
        self._pending = False  # the snapshot must be put back before training goes on
        self._rewind_torch = False
        self._loaded: Optional[Dict[str, Any]] = None  # (iter, snapshot) read from a checkpoint
        self._datasets: list = []
        self._sample_seed: Optional[int] = None  # the base seed of per-sample seeding (kept across a resume)

    # Saving -----------------------------------------------------------------------------------------------
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._snapshot = capture_random_state()
        self._pending = False

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(self._snapshot if self._snapshot is not None else capture_random_state())
        state['sample_seed'] = self._sample_seed if self._sample_seed is not None else runner.seed
        checkpoint[RANDOM_STATE_KEY] = state

    # Resuming ---------------------------------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(RANDOM_STATE_KEY)
        if state is not None:
            self._loaded = dict(iter=checkpoint.get('meta', {}).get('iter'), state=state)

    def before_train(self, runner) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is not None and runner.iter > 0 and loaded['iter'] == runner.iter:  # a resume, not load_from
            self._snapshot, self._pending = loaded['state'], True
            # With randomness.seed=None the resumed runner drew a new seed: the data keeps the run's first one.
            self._sample_seed = loaded['state'].get('sample_seed')
        elif runner.iter > 0 and self._snapshot is None:
            print_log('RandomStateHook: the resumed checkpoint holds no random state (saved without this hook): '
                      'the resumed run draws other random numbers than an uninterrupted one would',
                      logger='current', level=30)
        if self.per_sample_seeding:
            self._enable_sample_seeding(runner)

    def after_train_epoch(self, runner) -> None:
        self._pending = self._snapshot is not None  # whatever the epoch's end drew, the next epoch starts alike

    def after_val(self, runner) -> None:
        if self._snapshot is not None and runner.train_loop is not None and runner.iter < runner.max_iters:
            self._pending = True

    def before_train_epoch(self, runner) -> None:
        if self._pending:  # (only ever set with a snapshot)
            restore_random_state(self._snapshot)
            # Starting the epoch's dataloader iterator draws its base seed from torch's generator, but only
            # when the iterator is new (always after a resume; with persistent workers, not otherwise): put
            # torch's state back once more before the first iteration.
            self._rewind_torch = True
        self._pending = False
        for dataset in self._datasets:
            dataset.set_sample_epoch(runner.epoch)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pending:
            restore_random_state(self._snapshot)
        elif self._rewind_torch:
            torch.set_rng_state(self._snapshot['torch'].cpu())
        self._pending = self._rewind_torch = False

    # Per-sample seeding -----------------------------------------------------------------------------------
    def _enable_sample_seeding(self, runner) -> None:
        from mmvlg.datasets.seeding import iter_seedable_datasets
        loader = runner.train_loop.dataloader
        self._datasets = list(iter_seedable_datasets(loader.dataset))
        if not self._datasets:
            print_log(f'RandomStateHook: {type(loader.dataset).__name__} has no per-sample seeding; its random '
                      'augmentation is not reproduced exactly after a resume', logger='current', level=30)
            return
        sampler = loader.batch_sampler.sampler if loader.batch_sampler is not None else loader.sampler
        epoch = getattr(sampler, 'epoch', runner.epoch)
        if self._sample_seed is None:
            self._sample_seed = runner.seed
        for dataset in self._datasets:
            dataset.set_sample_seeding(True, seed=self._sample_seed, epoch=epoch)
        if hasattr(sampler, 'set_epoch') and not getattr(sampler.set_epoch, '_mmvlg_seeding', False):
            original = sampler.set_epoch
            datasets = self._datasets

            def set_epoch(epoch: int) -> None:  # the data sets follow the sampler's epoch, in the main process
                for dataset in datasets:
                    dataset.set_sample_epoch(epoch)
                original(epoch)

            set_epoch._mmvlg_seeding = True
            sampler.set_epoch = set_epoch
        # An IterBasedTrainLoop started its iterator when it was built, before this hook ran: the batches its
        # workers prefetched then (prefetch_factor x num_workers at most) were drawn with MMEngine's worker seeding.
        # A resume replays and skips those first batches, so resuming stays exact; the iterator is not restarted,
        # which would close an InfiniteSampler's shared index generator and end the data.
