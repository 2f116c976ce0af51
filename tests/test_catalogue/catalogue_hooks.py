"""Test-only hooks for tests/test_catalogue/test_resume.py (imported by its configs with ``custom_imports``;
tests/test_catalogue is put on ``PYTHONPATH``): they kill the training process with SIGKILL at chosen points."""
import os
import signal

from mmengine.hooks import Hook

from mmvlg.registry import HOOKS


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module(force=True)
class KillAfterCheckpointHook(Hook):
    """SIGKILL right after the checkpoint of epoch ``epoch`` (1-based) was written, before its validation."""

    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            _die()


@HOOKS.register_module(force=True)
class KillDuringSaveHook(Hook):
    """SIGKILL in the middle of writing the checkpoint of epoch ``epoch``: the bytes are written, the file is
    not complete (``os.fsync`` of the file never returns)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if checkpoint.get('meta', {}).get('epoch') == self.epoch:
            os.fsync = lambda fd: _die()
