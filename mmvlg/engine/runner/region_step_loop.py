"""An iteration-based training loop with a second (region-text) dataloader, for X-VLM's two ways of mixing
image-text pairs and boxed region-text data (arXiv:2111.08276):

* ``mode='step'`` (the released pre-training code): in each iteration, with probability ``region_prob``, first
  one optimizer step on a batch of the region dataloader, then always one step on the main (image-text) batch:
  at most two optimizer steps per iteration, one scheduler step (the parameter schedulers step per iteration);
* ``mode='merge'`` (the paper: half of the images of each batch have boxes): every iteration appends a batch of
  the region dataloader to the main batch and takes one step on the union (set both loaders' ``batch_size`` to
  half of the batch).

(Mixing both kinds in one data set with MMEngine's ``ConcatDataset`` under the plain ``IterBasedTrainLoop`` is
the third way, with a boxed share that is only right on average.)
"""
import logging
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from torch.utils.data import DataLoader

from mmvlg.registry import LOOPS

REGION_STEP_MODES = ('step', 'merge')
#: Prefix of the logged outputs of a separate region step (``region_step_loss``, ``region_step_loss_itc``, ...).
REGION_LOG_PREFIX = 'region_step_'


def merge_data_batches(first: dict, second: dict) -> dict:
    """One batch of the samples of two collated batches (``pseudo_collate``'s lists, or stacked tensors, under
    the same keys): ``first``'s samples, then ``second``'s."""
    if set(first) != set(second):
        raise ValueError(f'RegionStepTrainLoop(mode="merge"): the main and the region batches have different keys '
                         f'({sorted(first)} vs {sorted(second)}); give both dataloaders the same collate_fn')
    merged = {}
    for key, a in first.items():
        b = second[key]
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            merged[key] = torch.cat([a, b])
        elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            merged[key] = list(a) + list(b)
        else:
            raise TypeError(f'RegionStepTrainLoop(mode="merge"): cannot merge the batch entries {key!r} of types '
                            f'{type(a).__name__} and {type(b).__name__}')
    return merged


def region_step_draw(seed: Optional[int], iteration: int, prob: float) -> bool:
    """Whether iteration ``iteration`` of a run seeded ``seed`` takes a region step of probability ``prob``: a
    uniform draw of a generator seeded by (seed, iteration) only, below ``prob``."""
    seed = int(seed or 0) & 0xFFFFFFFF
    return bool(np.random.default_rng([seed, int(iteration), 0x5EED]).random() < prob)


@LOOPS.register_module()
class RegionStepTrainLoop(IterBasedTrainLoop):
    """:class:`mmengine.runner.IterBasedTrainLoop` with a region-text dataloader mixed in (see the module doc).

    The draw of iteration ``i`` depends only on the runner's seed and ``i`` (the same on every rank, so that
    distributed ranks take the same number of steps, and the same after a resume; the authors' script draws from
    a per-rank generator instead). On resume, the region dataloader skips the batches of the iterations already
    trained, as the main one does.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader or dict): The main (image-text) dataloader.
        region_dataloader (DataLoader or dict): The region-text dataloader (built like ``train_dataloader``).
        max_iters (int): Iterations (= main batches, = parameter-scheduler steps).
        mode (str): ``'step'`` (default, the released code) or ``'merge'`` (the paper).
        region_prob (float): ``'step'`` mode: probability of a region step in an iteration. Defaults to 0.5
            (the authors' ``iter_perc``).
        **kwargs: ``val_begin``, ``val_interval``, ``dynamic_intervals`` of ``IterBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader: Union[DataLoader, Dict], region_dataloader: Union[DataLoader, Dict],
                 max_iters: int, mode: str = 'step', region_prob: float = 0.5, **kwargs) -> None:
        if mode not in REGION_STEP_MODES:
            raise ValueError(f'train_cfg.mode must be one of {REGION_STEP_MODES}, got {mode!r}')
        if not 0.0 <= float(region_prob) <= 1.0:
            raise ValueError(f'train_cfg.region_prob must be in [0, 1], got {region_prob!r}')
        super().__init__(runner, dataloader, max_iters, **kwargs)
        self.mode = mode
        self.region_prob = float(region_prob)
        if isinstance(region_dataloader, dict):
            diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed', False)
            region_dataloader = runner.build_dataloader(region_dataloader, seed=runner.seed,
                                                        diff_rank_seed=diff_rank_seed)
        self.region_dataloader = region_dataloader
        self.region_iterator = _InfiniteDataloaderIterator(region_dataloader)
        self._region_synced = False
        #: Number of region batches used so far (both modes).
        self.region_batches = 0

    # ------------------------------------------------------------------------------------------ draws
    def takes_region_step(self, iteration: int) -> bool:
        """Whether iteration ``iteration`` uses a region batch (always in ``'merge'`` mode)."""
        if self.mode == 'merge':
            return True
        if self.region_prob <= 0.0:
            return False
        return region_step_draw(self.runner.seed, iteration, self.region_prob)

    def region_batches_before(self, iteration: int) -> int:
        """Number of region batches that iterations ``0 .. iteration - 1`` use."""
        return sum(self.takes_region_step(i) for i in range(iteration))

    def _sync_region_iterator(self) -> None:
        """On the first iteration after a resume, skip the region batches the trained iterations used."""
        self._region_synced = True
        skip = self.region_batches_before(self._iter)
        if skip:
            print_log(f'Advance the region dataloader {skip} batches (resumed at iteration {self._iter})',
                      logger='current', level=logging.WARNING)
        for _ in range(skip):
            next(self.region_iterator)
        self.region_batches = skip

    def _next_region_batch(self) -> dict:
        self.region_batches += 1
        return next(self.region_iterator)

    # --------------------------------------------------------------------------------------- iteration
    def run_iter(self, data_batch: Sequence[dict]) -> None:
        """One iteration: an optional region step (``'step'``) or the merged batch (``'merge'``), then the main
        step; the hooks see the main (or merged) batch, and the outputs of a separate region step are logged
        with the prefix ``region_step_`` (``region_step`` itself: 1 where the iteration took one, else 0)."""
        if not self._region_synced:
            self._sync_region_iterator()
        region_outputs: Optional[Dict] = None
        use_region = self.takes_region_step(self._iter)
        if self.mode == 'merge':
            data_batch = merge_data_batches(data_batch, self._next_region_batch())
        self.runner.call_hook('before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        if self.mode == 'step' and use_region:
            region_outputs = self.runner.model.train_step(self._next_region_batch(),
                                                          optim_wrapper=self.runner.optim_wrapper)
        outputs = self.runner.model.train_step(data_batch, optim_wrapper=self.runner.optim_wrapper)
        if self.mode == 'step':
            outputs = dict(outputs)
            outputs[REGION_LOG_PREFIX.rstrip('_')] = torch.tensor(float(use_region))
            for key, value in (region_outputs or {}).items():
                outputs[REGION_LOG_PREFIX + key] = value
        self.runner.call_hook('after_train_iter', batch_idx=self._iter, data_batch=data_batch, outputs=outputs)
        self._iter += 1



__all__ = ['RegionStepTrainLoop', 'merge_data_batches', 'region_step_draw', 'REGION_STEP_MODES']
