"""FreezeModulesHook (SOHO's cold start): the named modules do not change (weights and BatchNorm statistics)
before ``end`` and train after it; parameters the module froze itself stay frozen; a resumed run picks up."""
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from mmvlg.engine.hooks import FreezeModulesHook


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 6))
        self.backbone[2].requires_grad_(False)  # frozen by the module itself (as ResNet's frozen_stages)
        self.head = nn.Linear(6, 2)

    def forward(self, inputs, labels=None, mode='loss'):
        logits = self.head(self.backbone(inputs))
        return dict(loss=nn.functional.cross_entropy(logits, labels))


class Recorder(Hook):

    def __init__(self):
        self.states = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        m = runner.model
        self.states.append(dict(iter=runner.iter, w=m.backbone[0].weight.detach().clone(),
                                rm=m.backbone[1].running_mean.clone(), head=m.head.weight.detach().clone()))


def _runner(tmp_path, hook, max_iters=5):
    torch.manual_seed(0)
    data = [dict(inputs=torch.randn(4), labels=torch.tensor(i % 2)) for i in range(32)]
    return Runner(
        model=ToyModel(), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=data, sampler=dict(type='InfiniteSampler', shuffle=False), batch_size=4,
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters), custom_hooks=[hook, Recorder()],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        default_scope='mmvlg')


def test_frozen_until_end_then_trained(tmp_path):
    hook = FreezeModulesHook(modules=['backbone'], end=3, by_epoch=False)
    runner = _runner(tmp_path, hook)
    w0 = runner.model.backbone[0].weight.detach().clone()
    rm0 = runner.model.backbone[1].running_mean.clone()
    runner.train()
    states = next(h for h in runner.hooks if isinstance(h, Recorder)).states
    assert [s['iter'] for s in states] == [0, 1, 2, 3, 4]  # after_train_iter runs before the counter moves
    for s in states[:3]:  # iterations 0, 1, 2: frozen (no step, no decay, no BatchNorm statistics)
        assert torch.equal(s['w'], w0) and torch.equal(s['rm'], rm0)
    assert not torch.equal(states[0]['head'], states[1]['head'])  # the rest trains
    assert not torch.equal(states[3]['w'], w0) and not torch.equal(states[3]['rm'], rm0)
    assert not hook.frozen and runner.model.backbone[0].weight.requires_grad
    assert not runner.model.backbone[2].weight.requires_grad  # the module's own frozen part stays frozen
    assert runner.model.backbone[1].training


def test_resume_is_frozen_exactly_when_the_uninterrupted_run_was(tmp_path):
    hook = FreezeModulesHook(modules='backbone', end=3, by_epoch=False)
    runner = _runner(tmp_path, hook, max_iters=2)
    runner.train()
    w2 = runner.model.backbone[0].weight.detach().clone()
    resumed = _runner(tmp_path, FreezeModulesHook(modules='backbone', end=3, by_epoch=False), max_iters=4)
    resumed._resume = True
    resumed._load_from = str(tmp_path / 'iter_2.pth')
    resumed.train()
    states = next(h for h in resumed.hooks if isinstance(h, Recorder)).states
    assert [s['iter'] for s in states] == [2, 3]
    assert torch.equal(states[0]['w'], w2)  # iteration 2 still frozen
    assert not torch.equal(states[1]['w'], w2)  # iteration 3 trains


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='end'):
        FreezeModulesHook(modules=['backbone'], end=-1)
    runner = _runner(tmp_path, FreezeModulesHook(modules=['neck'], end=1, by_epoch=False))
    with pytest.raises(ValueError, match="no sub-module 'neck'"):
        runner.train()


def test_ddp_error_names_the_wrapper_the_run_needs(tmp_path):
    """Under DDP without find_unused_parameters the error names MMEngine's wrapper for one optimizer and mmvlg's
    MultiOptimDistributedDataParallel for several (an OptimWrapperDict, or the model already in that wrapper)."""
    from types import SimpleNamespace

    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import OptimWrapper, OptimWrapperDict

    from mmvlg.engine import MultiOptimDistributedDataParallel
    assert not dist.is_initialized()
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "init"}', rank=0, world_size=1)
    try:
        model = ToyModel()
        single = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
        several = OptimWrapperDict(
            backbone=OptimWrapper(torch.optim.SGD(model.backbone.parameters(), lr=0.1)),
            others=OptimWrapper(torch.optim.AdamW(model.head.parameters(), lr=0.1)))
        mmengine_msg = r"model_wrapper_cfg=dict\(type='MMDistributedDataParallel', find_unused_parameters=True\)"
        mmvlg_msg = (r"model_wrapper_cfg=dict\(type='mmvlg\.engine\.MultiOptimDistributedDataParallel', "
                     r'find_unused_parameters=True\)')
        for wrapper, optim_wrapper, msg in ((MMDistributedDataParallel, single, mmengine_msg),
                                            (MMDistributedDataParallel, several, mmvlg_msg),
                                            (MultiOptimDistributedDataParallel, several, mmvlg_msg),
                                            (MultiOptimDistributedDataParallel, single, mmvlg_msg)):
            runner = SimpleNamespace(model=wrapper(model, find_unused_parameters=False), optim_wrapper=optim_wrapper,
                                     epoch=0, iter=0)
            with pytest.raises(ValueError, match=msg):
                FreezeModulesHook(modules=['backbone'], end=1).before_train(runner)
        runner = SimpleNamespace(model=MultiOptimDistributedDataParallel(model, find_unused_parameters=True),
                                 optim_wrapper=several, epoch=0, iter=0)
        hook = FreezeModulesHook(modules=['backbone'], end=1)
        hook.before_train(runner)  # the right wrapper: frozen, no error
        assert hook.frozen and not model.backbone[0].weight.requires_grad
    finally:
        dist.destroy_process_group()
