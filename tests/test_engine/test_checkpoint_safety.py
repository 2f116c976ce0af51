"""Checkpoints under ``torch.load(weights_only=True)``: mmvlg's own (resume, ``load_from``), third-party
state dicts, and malicious files (mmvlg/utils/checkpoint.py, mmvlg/engine/hooks/checkpoint_safety_hook.py).

The runners are real but tiny: ``tiny_mdetr_config`` on a generated SynthRef of 2 scenes per split (4 training
expressions, batch 2), a few iterations each.
"""
import os
import os.path as osp
from typing import Dict, List

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner, load_checkpoint

from mmvlg.testing import tiny_mdetr_config, tiny_synthref
from mmvlg.utils import register_all_modules
from mmvlg.utils.checkpoint import (
    HISTORY_BUFFER_TAG,
    UnsafeCheckpointError,
    restore_checkpoint,
    safe_load_checkpoint,
    sanitize_checkpoint,
)

register_all_modules()

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'), dict(type='PackGroundingInputs')]


def _dataloader(root: str, split: str, test_mode: bool) -> dict:
    return dict(
        batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=not test_mode),
        dataset=dict(type='SynthRefDataset', data_root=root, ann_file=f'annotations/finetune_synthref_{split}.json',
                     data_prefix=dict(img='images/'), generate=None, test_mode=test_mode, pipeline=PIPELINE))


def runner_kwargs(work_dir: str, data_root: str, name: str, max_iters: int = 4, **overrides) -> dict:
    """Arguments of a tiny iteration-based mmvlg ``Runner`` that saves a checkpoint every 2 iterations."""
    kwargs = dict(
        model=tiny_mdetr_config(), work_dir=work_dir, experiment_name=name, default_scope='mmvlg',
        train_dataloader=_dataloader(data_root, 'train', False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=1000),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3), clip_grad=dict(max_norm=1.0)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='SafeCheckpointHook')],
        log_processor=dict(by_epoch=False), randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')))
    kwargs.update(overrides)
    return kwargs


class RecordHook(Hook):
    """Records the state of the runner once a checkpoint is loaded (``before_train``/``before_val`` come
    right after ``load_or_resume``)."""

    def __init__(self) -> None:
        self.records: Dict[str, dict] = {}

    def _record(self, runner, stage: str) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        loss = runner.message_hub.log_scalars.get('train/loss')
        self.records[stage] = dict(
            iter=runner.iter, epoch=runner.epoch,
            state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
            loss_history=None if loss is None else loss.data[0].copy())

    def before_train(self, runner) -> None:
        self._record(runner, 'before_train')

    def before_val(self, runner) -> None:
        self._record(runner, 'before_val')


class Evil:
    """Unpickling this runs a shell command (it must never happen)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def unsafe_globals_for_plain_torch(path: str) -> List[str]:
    """The globals of a checkpoint that plain torch (without mmvlg's allow-list) refuses under weights_only."""
    ours = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    finally:
        torch.serialization.add_safe_globals(ours)


def assert_state_equal(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for k, v in expected.items():
        assert torch.equal(actual[k].cpu(), v.cpu()), k


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    return tiny_synthref(str(tmp_path_factory.mktemp('synthref') / 'data'), num_scenes=2, image_size=64)


@pytest.fixture(scope='module')
def resumed(tmp_path_factory, data_root):
    """Train 2 iterations (checkpoint iter_2.pth), then resume in the same work dir up to iteration 4."""
    work_dir = str(tmp_path_factory.mktemp('work'))
    first = Runner(**runner_kwargs(work_dir, data_root, 'first', max_iters=2))
    first.train()
    saved_loss = first.message_hub.log_scalars['train/loss'].data[0].copy()
    recorder = RecordHook()
    second = Runner(**runner_kwargs(work_dir, data_root, 'second', max_iters=4, resume=True,
                                    custom_hooks=[dict(type='SafeCheckpointHook'), recorder]))
    second.train()
    return dict(work_dir=work_dir, saved_loss=saved_loss, record=recorder.records['before_train'], runner=second)


def test_sanitize_and_restore_round_trip(tmp_path):
    buffer = HistoryBuffer()
    for v in (1.0, 2.5, 4.0):
        buffer.update(v)
    checkpoint = dict(meta=dict(best_score=np.float64(0.25), epoch=np.int64(3)),
                      message_hub=dict(log_scalars=dict(loss=buffer), runtime_info=dict(), resumed_keys=dict()))
    sanitize_checkpoint(checkpoint)
    assert type(checkpoint['meta']['best_score']) is float and type(checkpoint['meta']['epoch']) is int
    plain = checkpoint['message_hub']['log_scalars']['loss']
    assert isinstance(plain, dict) and plain[HISTORY_BUFFER_TAG] == 1
    path = str(tmp_path / 'ckpt.pth')
    torch.save(checkpoint, path)
    loaded = torch.load(path, weights_only=True)  # nothing beyond torch's own globals is needed
    restored = restore_checkpoint(loaded)['message_hub']['log_scalars']['loss']
    assert type(restored) is HistoryBuffer
    np.testing.assert_array_equal(restored.data[0], [1.0, 2.5, 4.0])
    np.testing.assert_array_equal(restored.data[1], [1, 1, 1])
    assert restored.mean() == pytest.approx(2.5) and restored.current() == 4.0
    assert restore_checkpoint(loaded) is loaded  # idempotent
    # The live buffer is left alone (the message hub deep-copies its buffers into the checkpoint).
    assert type(buffer) is HistoryBuffer and len(buffer.data[0]) == 3


def test_runner_checkpoint_needs_no_extra_globals(resumed):
    path = osp.join(resumed['work_dir'], 'iter_4.pth')
    # Only torch's default allow-list is needed: no HistoryBuffer, numpy or builtins.getattr in the pickle.
    assert unsafe_globals_for_plain_torch(path) == []
    checkpoint = safe_load_checkpoint(path)
    assert checkpoint['meta']['iter'] == 4
    assert type(checkpoint['message_hub']['log_scalars']['train/loss']) is HistoryBuffer


def test_resume_continues_from_checkpoint(resumed):
    work_dir, record = resumed['work_dir'], resumed['record']
    saved = safe_load_checkpoint(osp.join(work_dir, 'iter_2.pth'))
    # Right after loading: the iteration, the weights and the message hub of the checkpoint.
    assert record['iter'] == 2 and saved['meta']['iter'] == 2
    assert_state_equal(record['state_dict'], saved['state_dict'])
    np.testing.assert_array_equal(record['loss_history'], resumed['saved_loss'])
    assert len(record['loss_history']) == 2
    # Training went on to the end, extending the restored log history.
    runner = resumed['runner']
    assert runner.iter == 4
    assert len(runner.message_hub.log_scalars['train/loss'].data[0]) == 4
    final = safe_load_checkpoint(osp.join(work_dir, 'iter_4.pth'))
    assert final['meta']['iter'] == 4
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    assert_state_equal(model.state_dict(), final['state_dict'])
    assert not all(torch.equal(final['state_dict'][k], v) for k, v in saved['state_dict'].items())
    # The optimizer state was resumed (AdamW counts its steps) and so was the scheduler.
    steps = {float(s['step']) for s in final['optimizer']['state'].values()}
    assert steps == {4.0}
    assert final['param_schedulers'][0]['_global_step'] == 4


def test_load_from_mmvlg_checkpoint(resumed, data_root, tmp_path):
    path = osp.join(resumed['work_dir'], 'iter_4.pth')
    expected = safe_load_checkpoint(path)['state_dict']
    recorder = RecordHook()
    runner = Runner(**runner_kwargs(
        str(tmp_path), data_root, 'load_from', load_from=path, custom_hooks=[recorder],
        val_dataloader=_dataloader(data_root, 'val', True), val_cfg=dict(),
        val_evaluator=dict(type='RefExpMetric', topk=(1, 5, 10))))
    metrics = runner.val()
    assert_state_equal(recorder.records['before_val']['state_dict'], expected)
    assert 0.0 <= metrics['refexp/Prec@1'] <= metrics['refexp/Prec@10'] <= 100.0
    # MMEngine's function API takes the same path.
    from mmvlg.registry import MODELS
    model = MODELS.build(tiny_mdetr_config())
    load_checkpoint(model, path, strict=True)
    assert_state_equal(model.state_dict(), expected)


def test_runner_without_safe_checkpoint_hook_saves_sanitized(tmp_path, data_root):
    """Importing mmvlg is enough: a plain ``Runner`` with no ``SafeCheckpointHook`` writes checkpoints that need
    only torch's default allow-list (mmvlg.utils.checkpoint.register_sanitizing_checkpoint_save), and resumes."""
    from mmengine.runner import runner as runner_module
    assert getattr(runner_module.save_checkpoint, '_mmvlg_sanitizing', False)
    work_dir = str(tmp_path / 'work')
    first = Runner(**runner_kwargs(work_dir, data_root, 'no_hook_first', max_iters=2, custom_hooks=[]))
    assert not any(type(h).__name__ == 'SafeCheckpointHook' for h in first.hooks)
    first.train()
    path = osp.join(work_dir, 'iter_2.pth')
    assert unsafe_globals_for_plain_torch(path) == []
    raw = torch.load(path, weights_only=True)
    assert raw['message_hub']['log_scalars']['train/loss'][HISTORY_BUFFER_TAG] == 1
    recorder = RecordHook()
    second = Runner(**runner_kwargs(work_dir, data_root, 'no_hook_second', max_iters=3, resume=True,
                                    custom_hooks=[recorder]))
    second.train()
    assert recorder.records['before_train']['iter'] == 2 and second.iter == 3
    assert len(recorder.records['before_train']['loss_history']) == 2
    assert unsafe_globals_for_plain_torch(osp.join(work_dir, 'iter_3.pth')) == []


@pytest.mark.parametrize('resume', [False, True])
def test_malicious_checkpoint_is_refused(tmp_path, data_root, resume):
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict=dict(), meta=dict(payload=Evil(str(marker)))), path)

    with pytest.raises(UnsafeCheckpointError, match='evil.pth') as err:
        safe_load_checkpoint(path)
    assert 'system' in str(err.value)  # the refused global is named
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        load_checkpoint(torch.nn.Linear(2, 2), path)
    runner = Runner(**runner_kwargs(str(tmp_path / 'work'), data_root, f'evil_{resume}', load_from=path,
                                    resume=resume))
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        runner.load_or_resume()
    assert not marker.exists()


def test_plain_mmengine_checkpoint_loads_without_code(tmp_path):
    """A HistoryBuffer pickled as MMEngine does it carries its statistics functions, which load only through
    ``builtins.getattr``: that name is bound to a function that gives exactly those four functions, so the
    file loads (issue 15) and nothing else is reachable through it (tests/test_catalogue/test_security.py)."""
    buffer = HistoryBuffer()
    buffer.update(1.0)
    path = str(tmp_path / 'legacy.pth')
    torch.save(dict(state_dict=dict(), message_hub=dict(log_scalars=dict(loss=buffer))), path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []  # with mmvlg's allow-list
    assert 'builtins.getattr' in unsafe_globals_for_plain_torch(path)  # what plain torch refuses
    loaded = safe_load_checkpoint(path)['message_hub']['log_scalars']['loss']
    assert type(loaded) is HistoryBuffer and loaded.current() == 1.0


@pytest.mark.parametrize('prefix', ['', 'module.'])
def test_third_party_plain_state_dict_loads(tmp_path, data_root, prefix):
    from mmvlg.registry import MODELS
    torch.manual_seed(1)
    source = MODELS.build(tiny_mdetr_config())
    expected = source.state_dict()
    path = str(tmp_path / 'plain.pth')
    torch.save({prefix + k: v for k, v in expected.items()}, path)  # a bare (DataParallel-style) state dict

    assert set(safe_load_checkpoint(path)) == {prefix + k for k in expected}
    model = MODELS.build(tiny_mdetr_config())
    load_checkpoint(model, path, strict=True)
    assert_state_equal(model.state_dict(), expected)

    runner = Runner(**runner_kwargs(str(tmp_path / 'work'), data_root, f'plain_{prefix}', load_from=path))
    runner.load_or_resume()
    assert_state_equal(runner.model.state_dict(), expected)
