"""Mixed precision with ModuleOptimWrapperConstructor: every entry an AmpOptimWrapper sharing one loss scaler, one
autocast around the forward (bfloat16 on the CPU), both optimizers stepping their own parameters."""
import copy

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper
from torch import nn

from mmvlg.engine import multi_optim_train_step
from mmvlg.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmvlg.utils import register_all_modules


class TinyModel(BaseModel):
    """A backbone (SGD) and an embedding tied to the output layer (AdamW)."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))
        self.embed = nn.Embedding(5, 6)
        self.head = nn.Linear(6, 5, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, inputs, data_samples=None, mode='loss'):
        return dict(loss=nn.functional.cross_entropy(self.head(self.backbone(inputs)).float(), data_samples))


def _build(cfg):
    register_all_modules()
    return OPTIM_WRAPPER_CONSTRUCTORS.build(dict(type='ModuleOptimWrapperConstructor', optim_wrapper_cfg=cfg))


def _cfg():
    return dict(
        backbone=dict(modules=['backbone'], type='OptimWrapper',
                      optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)),
        others=dict(modules=None, type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.1, weight_decay=0.01)))


@pytest.fixture
def cpu_amp(monkeypatch):
    """AmpOptimWrapper refuses to build without an accelerator; lift the check to run its CPU path (bfloat16
    autocast; its CUDA GradScaler is then disabled, a pass-through)."""
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)


def _amp_cfg(**entry_kwargs):
    cfg = _cfg()
    for entry in ('backbone', 'others'):
        cfg[entry].update(entry_kwargs)
    return dict(type='AmpOptimWrapper', dtype='bfloat16', **cfg)


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(inputs=torch.randn(8, 4, generator=g), data_samples=torch.randint(0, 5, (8,), generator=g))


def _reference_step(model, data, autocast):
    """One step by hand: (autocast) forward, backward, SGD and AdamW with the configs of ``_cfg``."""
    sgd = torch.optim.SGD(model.backbone.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    adamw = torch.optim.AdamW([model.embed.weight], lr=0.1, weight_decay=0.01)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        loss = model(data['inputs'], data['data_samples'])['loss']
    loss.backward()
    sgd.step()
    adamw.step()


def test_amp_entries_share_one_scaler_and_step_both_optimizers(cpu_amp):
    torch.manual_seed(0)
    model = TinyModel()
    ref = copy.deepcopy(model)
    wrappers = _build(_amp_cfg())(model)
    assert all(isinstance(w, AmpOptimWrapper) and w.cast_dtype == torch.bfloat16 for w in wrappers.values())
    assert wrappers['backbone'].loss_scaler is wrappers['others'].loss_scaler
    dtypes = []
    model.backbone[0].register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log_vars = multi_optim_train_step(model, _data(), wrappers)
    assert 'loss' in log_vars
    assert dtypes == [torch.bfloat16]  # one forward, under autocast
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {n for n, _ in model.named_parameters() if n.startswith('backbone.')} | {'embed.weight'}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights stay fp32
    for w in wrappers.values():
        assert all(p.grad is None or not p.grad.any() for g in w.optimizer.param_groups for p in g['params'])

    _reference_step(ref, _data(), autocast=True)
    for n, p in ref.named_parameters():
        torch.testing.assert_close(p, dict(model.named_parameters())[n], rtol=0, atol=1e-6, msg=n)


def test_top_level_dtype_and_loss_scale_reach_every_entry(cpu_amp):
    wrappers = _build(dict(type='AmpOptimWrapper', dtype='bfloat16', loss_scale=512.0, **_cfg()))(TinyModel())
    assert {w._scale_update_param for w in wrappers.values()} == {512.0}
    assert {w.cast_dtype for w in wrappers.values()} == {torch.bfloat16}


def test_one_scale_for_two_optimizers(cpu_amp):
    """With an enabled (CPU) GradScaler: the loss is scaled once, each optimizer steps on unscaled gradients (the
    clipped entry unscales before clipping), and an optimizer whose gradients overflow skips its step while the
    scale is halved once, not once per optimizer."""
    torch.manual_seed(0)
    model = TinyModel()
    ref = copy.deepcopy(model)
    wrappers = _build(_amp_cfg(clip_grad=dict(max_norm=1e6)))(model)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 4)
    for w in wrappers.values():
        w.loss_scaler = scaler
    multi_optim_train_step(model, _data(), wrappers)
    assert scaler.get_scale() == 2.0 ** 4  # no overflow: the scale is kept (growth only after 2000 steps)

    _reference_step(ref, _data(), autocast=True)
    for n, p in ref.named_parameters():
        torch.testing.assert_close(dict(model.named_parameters())[n], p, rtol=1e-5, atol=1e-6, msg=n)

    # an overflow in the backbone's gradients: SGD skips, AdamW steps, the scale halves once
    handle = model.backbone[0].weight.register_hook(lambda g: torch.full_like(g, float('inf')))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    multi_optim_train_step(model, _data(1), wrappers)
    handle.remove()
    assert scaler.get_scale() == 2.0 ** 3
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if n.startswith('backbone.'))
    assert not torch.equal(model.embed.weight, before['embed.weight'])


def test_fp32_step_is_unchanged():
    """Without AMP the step is the plain one: exactly the hand-made fp32 SGD + AdamW step."""
    torch.manual_seed(0)
    model = TinyModel()
    ref = copy.deepcopy(model)
    wrappers = _build(_cfg())(model)
    assert all(type(w) is OptimWrapper for w in wrappers.values())
    multi_optim_train_step(model, _data(), wrappers)
    _reference_step(ref, _data(), autocast=False)
    for n, p in ref.named_parameters():
        assert torch.equal(dict(model.named_parameters())[n], p), n


def test_amp_errors(cpu_amp):
    with pytest.raises(ValueError, match='AmpOptimWrapper'):
        _build(dict(type='ZeroRedundancyOptimizer', **_cfg()))
    with pytest.raises(ValueError, match="need optim_wrapper.type='AmpOptimWrapper'"):
        _build(dict(dtype='bfloat16', **_cfg()))
    cfg = _cfg()
    cfg['backbone']['type'] = 'AmpOptimWrapper'
    with pytest.raises(ValueError, match='mixed'):
        _build(cfg)(TinyModel())
    wrappers = _build(_amp_cfg())(TinyModel())
    wrappers['others'].cast_dtype = torch.float16
    with pytest.raises(ValueError, match='different dtypes'):
        multi_optim_train_step(TinyModel(), _data(), wrappers)
