"""Tests of ParamChecksumHook (mmvlg/engine/hooks/param_checksum_hook.py) with a stand-in runner."""
import json
import logging
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mmvlg.engine.hooks import ParamChecksumHook, param_checksum
from mmvlg.engine.hooks import param_checksum_hook as hook_module


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2)).eval()


def fake_runner(model: nn.Module, work_dir: str, iteration: int = 5) -> SimpleNamespace:
    return SimpleNamespace(model=model, work_dir=work_dir, iter=iteration, epoch=0,
                           logger=logging.getLogger('test_param_checksum_hook'))


def tiny_model_with_input() -> nn.Module:
    model = tiny_model()
    model(torch.zeros(1, 3, 5, 5))  # materialise the lazy layer
    return model


def test_param_checksum_is_bit_exact_and_ignores_buffers():
    model = tiny_model_with_input()
    ref, ref_all = param_checksum(model), param_checksum(model, include_buffers=True)
    assert ref == param_checksum(model) and ref['num_tensors'] == len(list(model.parameters()))
    model[1].running_mean += 1  # a buffer: only part of the digest with include_buffers
    assert param_checksum(model)['sha256'] == ref['sha256']
    assert param_checksum(model, include_buffers=True)['sha256'] != ref_all['sha256']
    with torch.no_grad():
        model[0].weight.view(-1)[0] = torch.nextafter(model[0].weight.view(-1)[0], torch.tensor(10.0))
    assert param_checksum(model)['sha256'] != ref['sha256']  # one ulp in one weight changes it


def test_hook_writes_per_rank_file_and_unwraps_model(tmp_path):
    model = tiny_model_with_input()
    hook = ParamChecksumHook(out_dir='checksums')
    hook.after_train(fake_runner(nn.DataParallel(model), str(tmp_path)))  # a model wrapper: its .module
    with open(tmp_path / 'checksums' / 'param_checksum_rank0.json') as f:
        record = json.load(f)
    assert record['sha256'] == param_checksum(model)['sha256']
    assert record['rank'] == 0 and record['world_size'] == 1 and record['iter'] == 5


@pytest.mark.parametrize('strict', [False, True])
def test_hook_reports_rank_mismatch(tmp_path, monkeypatch, caplog, strict):
    monkeypatch.setattr(hook_module, 'get_dist_info', lambda: (0, 2))
    monkeypatch.setattr(hook_module, 'all_gather_object', lambda obj: [obj, 'f' * 64])
    hook = ParamChecksumHook(interval=2, strict=strict)
    runner = fake_runner(tiny_model_with_input(), str(tmp_path), iteration=1)
    if strict:
        with pytest.raises(RuntimeError, match='differ between ranks at iter 2'):
            hook.after_train_iter(runner, batch_idx=1)
    else:
        with caplog.at_level(logging.ERROR, logger='test_param_checksum_hook'):
            hook.after_train_iter(runner, batch_idx=1)
        assert 'differ between ranks at iter 2' in caplog.text
    # Agreeing ranks pass; iterations off the interval are not checked at all.
    monkeypatch.setattr(hook_module, 'all_gather_object', lambda obj: [obj, obj])
    hook.after_train_iter(runner, batch_idx=1)
    monkeypatch.setattr(hook_module, 'all_gather_object', lambda obj: pytest.fail('checked off the interval'))
    runner.iter = 2
    hook.after_train_iter(runner, batch_idx=2)
