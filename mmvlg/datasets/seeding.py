"""Per-sample seeding of the data pipeline, so that random augmentation survives a resume bit for bit.

With MMEngine's defaults, the random draws of a training pipeline (flips, crops, ...) come from each
dataloader worker's global generators, seeded once when the worker starts and then advancing. A resumed run
starts new workers from the same seeds, so from the first resumed epoch on its flips differ from those of
the run that was not interrupted, and with ``persistent_workers=True`` the worker state of epoch N is not
known to anybody. :class:`SampleSeedingMixin` removes that state: when seeding is on, the pipeline of sample
``idx`` in epoch ``e`` runs with Python's, numpy's and torch's global generators seeded from
``(seed, e, stream, idx)``, so its draws depend on nothing else: not on the worker that loads it, the number
of workers, the samples loaded before it, or whether the run was resumed.

The switch, the seed and the epoch live in a small shared-memory array created with the dataset, so worker
processes (persistent ones included) see updates made in the main process.
:class:`~mmvlg.engine.hooks.RandomStateHook` turns seeding on before training and keeps the epoch in step
with the sampler's ``set_epoch``.
"""
import multiprocessing
import random
import zlib
from typing import Iterator, Optional

import numpy as np
import torch

_ENABLED, _SEED, _EPOCH = range(3)


class _SharedSeedState:
    """Three shared 64-bit integers (enabled, seed, epoch) that dataloader workers read and the main process
    writes. A copy of the data set (``copy.deepcopy``, MMEngine's ``get_subset``) shares them; a worker gets
    them as multiprocessing shares memory with the processes it starts (fork or spawn)."""

    def __init__(self) -> None:
        self.values = multiprocessing.RawArray('q', 3)

    def __getitem__(self, i: int) -> int:
        return self.values[i]

    def __setitem__(self, i: int, value: int) -> None:
        self.values[i] = value

    def __deepcopy__(self, memo) -> '_SharedSeedState':
        return self


class SampleSeedingMixin:
    """Mixin for MMEngine datasets: optional per-sample seeding of :meth:`prepare_data` (see the module
    docstring). Put it before the MMEngine base class: ``class MyDataset(SampleSeedingMixin, BaseDataset)``.

    Seeding is off until :meth:`set_sample_seeding` turns it on, and then the pipeline of a sample sees
    Python's ``random``, ``numpy.random`` and ``torch`` seeded from ``(seed, epoch, stream, idx)``, where
    ``stream`` tells data sets apart (from the annotation file's name) so that two data sets of a
    ``ConcatDataset`` do not share draws. In the main process (``num_workers=0``) the global generators are
    restored afterwards, so the training loop's own draws (dropout) are not disturbed.
    """

    def __init__(self, *args, **kwargs) -> None:
        self._seeding = _SharedSeedState()
        super().__init__(*args, **kwargs)

    def set_sample_seeding(self, enabled: bool, seed: Optional[int] = None, epoch: Optional[int] = None) -> None:
        """Turn per-sample seeding on or off, and set the base seed and the epoch.

        Args:
            enabled (bool): Whether to seed each sample's pipeline.
            seed (int, optional): The base seed (e.g. the runner's ``seed``); unchanged if None.
            epoch (int, optional): The current epoch; unchanged if None.
        """
        if seed is not None:
            self._seeding[_SEED] = int(seed) & 0x7FFFFFFFFFFFFFFF
        if epoch is not None:
            self.set_sample_epoch(epoch)
        self._seeding[_ENABLED] = int(bool(enabled))

    def set_sample_epoch(self, epoch: int) -> None:
        """Set the epoch that per-sample seeds are drawn for."""
        self._seeding[_EPOCH] = int(epoch)

    @property
    def sample_seeding(self) -> bool:
        """Whether per-sample seeding is on."""
        return bool(self._seeding[_ENABLED])

    def _seed_stream(self) -> int:
        return zlib.crc32(str(getattr(self, 'ann_file', type(self).__name__)).encode())

    def sample_seed(self, idx: int) -> int:
        """The seed of sample ``idx`` in the current epoch (a 32-bit number)."""
        entropy = [int(self._seeding[_SEED]), int(self._seeding[_EPOCH]), self._seed_stream(), int(idx)]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])

    def prepare_data(self, idx):
        if not self._seeding[_ENABLED]:
            return super().prepare_data(idx)
        seed = self.sample_seed(idx)
        in_main = torch.utils.data.get_worker_info() is None
        if in_main:
            saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            return super().prepare_data(idx)
        finally:
            if in_main:
                random.setstate(saved[0])
                np.random.set_state(saved[1])
                torch.set_rng_state(saved[2])


def iter_seedable_datasets(dataset) -> Iterator[SampleSeedingMixin]:
    """Every :class:`SampleSeedingMixin` data set inside ``dataset``, looking through MMEngine's and
    PyTorch's wrappers (``ConcatDataset.datasets``, ``RepeatDataset.dataset``, ...)."""
    if isinstance(dataset, SampleSeedingMixin):
        yield dataset
        return
    for attr in ('datasets', 'dataset'):
        inner = getattr(dataset, attr, None)
        if inner is None:
            continue
        for d in (inner if isinstance(inner, (list, tuple)) else [inner]):
            yield from iter_seedable_datasets(d)
