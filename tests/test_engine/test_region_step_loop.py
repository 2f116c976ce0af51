"""RegionStepTrainLoop: X-VLM's separate region step with probability p (at most two optimizer steps per
iteration, one scheduler step) and the paper's merged half-boxed batches, on a toy model that records what each
optimizer step saw."""
import itertools

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmvlg.engine.runner import RegionStepTrainLoop, merge_data_batches, region_step_draw
from mmvlg.utils import register_all_modules


class _Kind(Dataset):
    def __init__(self, kind: str, n: int = 32) -> None:
        self.kind, self.n = kind, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=torch.full((2, ), float(i)), data_samples=self.kind)


class _Recorder(BaseModel):
    """One weight; records the kinds of the samples of every train_step (= every optimizer step)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))
        self.steps = []

    def forward(self, inputs, data_samples=None, mode='loss'):
        self.steps.append(list(data_samples))
        loss = (torch.stack(inputs) * self.w).sum() * 0 + self.w.sum()
        return dict(loss=loss)


_RUNNER_IDS = itertools.count()


def _runner(tmp_path, mode='step', region_prob=0.5, max_iters=20, seed=3):
    register_all_modules()
    loader = dict(batch_size=4, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True))
    return Runner(
        model=_Recorder(), work_dir=str(tmp_path), randomness=dict(seed=seed),
        train_dataloader=dict(loader, dataset=_Kind('pair')),
        train_cfg=dict(type='RegionStepTrainLoop', mode=mode, region_prob=region_prob, max_iters=max_iters,
                       region_dataloader=dict(loader, batch_size=2, dataset=_Kind('region')), val_interval=10**9),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        param_scheduler=dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=max_iters),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1), checkpoint=None),
        # a name of its own: runners built in the same second share the timestamp name, hence one MessageHub
        experiment_name=f'region_step_{mode}_{next(_RUNNER_IDS)}', default_scope='mmvlg')


def test_region_step_draw_is_deterministic_and_has_rate_p():
    draws = [region_step_draw(0, i, 0.5) for i in range(2000)]
    assert draws == [region_step_draw(0, i, 0.5) for i in range(2000)]
    assert 0.45 < sum(draws) / len(draws) < 0.55
    assert draws != [region_step_draw(1, i, 0.5) for i in range(2000)]
    assert not any(region_step_draw(0, i, 0.0) for i in range(100))
    assert all(region_step_draw(0, i, 1.0) for i in range(100))
    assert 0.15 < sum(region_step_draw(5, i, 0.2) for i in range(2000)) / 2000 < 0.25


def test_step_mode_takes_a_separate_region_step_with_probability_p(tmp_path):
    runner = _runner(tmp_path, max_iters=20)
    runner.train()
    loop = runner.train_loop
    assert isinstance(loop, RegionStepTrainLoop)
    expected = [region_step_draw(runner.seed, i, 0.5) for i in range(20)]
    assert 0 < sum(expected) < 20  # both cases occur with this seed
    steps = runner.model.steps
    # one optimizer step per main batch, plus one before it where the draw says so
    assert len(steps) == 20 + sum(expected)
    it = iter(steps)
    for took in expected:
        if took:
            assert next(it) == ['region', 'region']
        assert next(it) == ['pair'] * 4
    assert loop.region_batches == sum(expected)
    # the scheduler stepped once per iteration (not per optimizer step): as often as in a run without regions
    plain = _runner(tmp_path / 'plain', region_prob=0.0, max_iters=20)
    plain.train()
    assert len(plain.model.steps) == 20
    assert runner.param_schedulers[0].last_step == plain.param_schedulers[0].last_step
    assert runner.optim_wrapper.get_lr()['lr'] == plain.optim_wrapper.get_lr()['lr']
    scalars = runner.message_hub.log_scalars
    assert 'train/region_step' in scalars and 'train/region_step_loss' in scalars
    assert runner.message_hub.get_scalar('train/region_step').current() == float(expected[-1])


def test_resume_skips_the_region_batches_of_the_trained_iterations(tmp_path):
    runner = _runner(tmp_path / 'resume', max_iters=12)
    loop = runner.train_loop
    loop._iter = 7  # as after a resume at iteration 7
    assert loop.region_batches_before(7) == sum(region_step_draw(runner.seed, i, 0.5) for i in range(7))
    loop._sync_region_iterator()
    assert loop.region_batches == loop.region_batches_before(7)


def test_merge_mode_gives_half_boxed_batches(tmp_path):
    runner = _runner(tmp_path, mode='merge', max_iters=4)
    runner.train()
    assert runner.model.steps == [['pair'] * 4 + ['region'] * 2] * 4
    assert runner.train_loop.region_batches == 4
    assert 'train/region_step' not in runner.message_hub.log_scalars


def test_merge_data_batches_and_bad_config(tmp_path):
    a = dict(inputs=[torch.zeros(1)], data_samples=['a'])
    b = dict(inputs=[torch.ones(1), torch.ones(1)], data_samples=['b', 'c'])
    assert merge_data_batches(a, b)['data_samples'] == ['a', 'b', 'c']
    assert merge_data_batches(dict(x=torch.zeros(1, 2)), dict(x=torch.ones(3, 2)))['x'].shape == (4, 2)
    with pytest.raises(ValueError, match='different keys'):
        merge_data_batches(a, dict(inputs=[]))
    with pytest.raises(ValueError, match='train_cfg.mode'):
        _runner(tmp_path, mode='half').train_loop
    with pytest.raises(ValueError, match='region_prob'):
        _runner(tmp_path, region_prob=1.5).train_loop
