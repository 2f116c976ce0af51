"""Test-only hooks for tests/test_engine/test_siri_hook.py's distributed run (imported by its config with
``custom_imports``; tests/test_engine is put on ``PYTHONPATH``)."""
import os.path as osp
from typing import Sequence

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmvlg.registry import HOOKS


@HOOKS.register_module(force=True)
class RankDesyncHook(Hook):
    """Seed each rank differently right before the given iterations, so that a random re-initialization
    would draw different values on every rank unless they are broadcast."""

    priority = 'HIGHEST'

    def __init__(self, iters: Sequence[int]) -> None:
        self.iters = set(iters)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter in self.iters:
            torch.manual_seed(1000 + 17 * get_rank())


@HOOKS.register_module(force=True)
class RankStateDumpHook(Hook):
    """Save each rank's model state (and one random draw, showing that the ranks' generators differ) right
    after the other hooks ran at the given iterations, and at the end of training, to
    ``{work_dir}/rank{rank}_{iter|end}.pth``."""

    priority = 'VERY_LOW'

    def __init__(self, iters: Sequence[int], before: Sequence[int] = ()) -> None:
        self.iters, self.before = set(iters), set(before)

    def _dump(self, runner, tag: str) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        torch.save(dict(state=state, draw=torch.rand(4)), osp.join(runner.work_dir, f'rank{get_rank()}_{tag}.pth'))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.iter in self.iters:
            self._dump(runner, f'iter{runner.iter}')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 in self.before:  # the state at the end of the previous round
            self._dump(runner, f'done{runner.iter + 1}')

    def after_train(self, runner) -> None:
        self._dump(runner, 'end')
