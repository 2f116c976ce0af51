"""ModuleOptimWrapperConstructor: one optimizer per group of sub-modules (SOHO's SGD for the CNN and AdamW for
the rest), each stepping its own parameters only, through multi_optim_train_step."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapperDict
from torch import nn

from mmvlg.engine import ModuleOptimWrapperConstructor, multi_optim_train_step
from mmvlg.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmvlg.utils import register_all_modules


class TinyModel(BaseModel):
    """A backbone, a head whose output layer is tied to the embedding, and a frozen part."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))
        self.embed = nn.Embedding(5, 6)
        self.head = nn.Linear(6, 5, bias=False)
        self.head.weight = self.embed.weight
        self.frozen = nn.Linear(3, 3).requires_grad_(False)

    def forward(self, inputs, data_samples=None, mode='loss'):
        logits = self.head(self.backbone(inputs)) + self.embed.weight.sum() * 0.01
        return dict(loss=nn.functional.cross_entropy(logits, data_samples))


def _build(cfg):
    register_all_modules()
    return OPTIM_WRAPPER_CONSTRUCTORS.build(dict(type='ModuleOptimWrapperConstructor', optim_wrapper_cfg=cfg))


def _cfg(sgd_lr=0.1, adamw_lr=0.1):
    return dict(
        backbone=dict(modules=['backbone'], type='OptimWrapper',
                      optimizer=dict(type='SGD', lr=sgd_lr, momentum=0.9, weight_decay=1e-4)),
        others=dict(modules=None, type='OptimWrapper', optimizer=dict(type='AdamW', lr=adamw_lr, weight_decay=0.01),
                    paramwise_cfg=dict(norm_decay_mult=0.0)))


def test_partition_and_optimizer_types():
    model = TinyModel()
    wrappers = _build(_cfg())(model)
    assert isinstance(wrappers, OptimWrapperDict) and set(wrappers.keys()) == {'backbone', 'others'}
    assert isinstance(wrappers['backbone'].optimizer, torch.optim.SGD)
    assert isinstance(wrappers['others'].optimizer, torch.optim.AdamW)
    ids = {k: [id(p) for g in w.optimizer.param_groups for p in g['params']] for k, w in wrappers.items()}
    assert set(ids['backbone']) == {id(p) for p in model.backbone.parameters()}
    assert set(ids['others']) == {id(model.embed.weight)}  # the tied weight once, the frozen part nowhere
    assert len(ids['others']) == 1


@pytest.mark.parametrize('frozen_side', ['backbone', 'others'])
def test_each_optimizer_steps_its_own_parameters(frozen_side):
    torch.manual_seed(0)
    model = TinyModel()
    cfg = _cfg(sgd_lr=0.0 if frozen_side == 'backbone' else 0.1, adamw_lr=0.0 if frozen_side == 'others' else 0.1)
    wrappers = _build(cfg)(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = dict(inputs=torch.randn(8, 4), data_samples=torch.randint(0, 5, (8,)))
    log_vars = multi_optim_train_step(model, data, wrappers)
    assert 'loss' in log_vars
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    backbone = {n for n, _ in model.named_parameters() if n.startswith('backbone.')}
    if frozen_side == 'backbone':  # SGD at lr 0: only AdamW's parameters move
        assert changed == {'embed.weight'}
    else:  # AdamW at lr 0 (its decoupled decay is lr-scaled too): only SGD's parameters move
        assert changed == backbone
    for w in wrappers.values():  # each zeroed its gradients after its step
        assert all(p.grad is None or not p.grad.any() for g in w.optimizer.param_groups for p in g['params'])


def test_bad_configs():
    model = TinyModel()
    with pytest.raises(ValueError, match='names no parameter'):
        _build(dict(a=dict(modules=['neck'], optimizer=dict(type='SGD', lr=0.1)),
                    b=dict(modules=None, optimizer=dict(type='SGD', lr=0.1))))(model)
    with pytest.raises(ValueError, match='modules=None'):
        _build(dict(a=dict(modules=['backbone'], optimizer=dict(type='SGD', lr=0.1))))(model)
    with pytest.raises(ValueError, match='claimed by'):
        _build(dict(a=dict(modules=['backbone'], optimizer=dict(type='SGD', lr=0.1)),
                    b=dict(modules=['backbone.0', 'embed'], optimizer=dict(type='SGD', lr=0.1))))(model)
    with pytest.raises(ValueError, match='paramwise_cfg'):
        ModuleOptimWrapperConstructor(_cfg(), paramwise_cfg=dict(norm_decay_mult=0.0))


def _ddp_worker(rank, init_file, data, out):
    import torch.distributed as dist

    from mmvlg.engine import MultiOptimDistributedDataParallel
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    torch.manual_seed(0)
    model = TinyModel()
    model.backbone[1] = nn.Identity()  # BatchNorm statistics would differ per rank's half batch
    wrapped = MultiOptimDistributedDataParallel(model)
    wrappers = _build(_cfg())(wrapped)
    rows = slice(4 * rank, 4 * rank + 4)
    for step in range(2):
        multi_optim_train_step(wrapped, dict(inputs=data['x'][step, rows], data_samples=data['y'][step, rows]),
                               wrappers)
    out[rank].copy_(torch.cat([p.detach().flatten() for p in model.parameters()]))
    dist.destroy_process_group()


def test_distributed_wrapper_steps_both_optimizers_in_sync(tmp_path):
    """Two gloo processes with MultiOptimDistributedDataParallel: after two steps on different halves of each
    batch the ranks hold the same parameters, those of one process on the whole batches."""
    import os

    import torch.multiprocessing as mp
    torch.manual_seed(1)
    data = dict(x=torch.randn(2, 8, 4), y=torch.randint(0, 5, (2, 8)))
    torch.manual_seed(0)
    single = TinyModel()
    single.backbone[1] = nn.Identity()
    n = sum(p.numel() for p in single.parameters())
    out = torch.zeros(2, n).share_memory_()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    mp.start_processes(_ddp_worker, args=(str(tmp_path / 'init'), data, out), nprocs=2, join=True,
                       start_method='spawn')
    assert torch.equal(out[0], out[1])
    wrappers = _build(_cfg())(single)
    start = torch.cat([p.detach().flatten() for p in single.parameters()])
    for step in range(2):
        multi_optim_train_step(single, dict(inputs=data['x'][step], data_samples=data['y'][step]), wrappers)
    ref = torch.cat([p.detach().flatten() for p in single.parameters()])
    assert not torch.allclose(ref, start)
    assert torch.allclose(out[0], ref, atol=1e-5)


def test_plain_ddp_wrapper_is_refused_naming_model_wrapper_cfg(tmp_path):
    """A config with this constructor but MMEngine's default DDP wrapper (no model_wrapper_cfg) stops when the
    optimizers are built, with the key to set, instead of failing in the first iteration."""
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel

    from mmvlg.engine import MultiOptimDistributedDataParallel
    assert not dist.is_initialized()
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "init"}', rank=0, world_size=1)
    try:
        model = TinyModel()
        wanted = r"model_wrapper_cfg=dict\(type='mmvlg\.engine\.MultiOptimDistributedDataParallel'"
        with pytest.raises(ValueError, match=wanted):
            _build(_cfg())(MMDistributedDataParallel(model))
        wrappers = _build(_cfg())(MultiOptimDistributedDataParallel(model))
        assert set(wrappers.keys()) == {'backbone', 'others'}
    finally:
        dist.destroy_process_group()
