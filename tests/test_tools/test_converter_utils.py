"""Tests of mmvlg/utils/converters.py, the checks that every ``tools/model_converters/*_to_mmvlg.py`` shares."""
import os.path as osp
import re

import pytest
import torch
from torch import nn

from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import checkpoint as checkpoint_module
from mmvlg.utils.converters import (
    PROBLEM_KINDS,
    ConversionError,
    ConversionReport,
    build_target_model,
    fill_batchnorm_counters,
    fill_tied_tensors,
    keep_model_tensors,
    load_weights_entry,
    optional_target_reason,
    save_converted_checkpoint,
    tied_groups,
)


def tiny_target() -> dict:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Linear(4, 2))
    return model.state_dict()


def test_fill_batchnorm_counters_adds_zeros_and_names_the_missing():
    target = tiny_target()
    converted = {k: v.clone() for k, v in target.items() if not k.endswith('num_batches_tracked')}
    converted.pop('2.bias')
    added, missing = fill_batchnorm_counters(converted, target)
    assert added == ['1.num_batches_tracked']
    assert missing == ['2.bias']
    counter = converted['1.num_batches_tracked']
    assert counter.dtype == target['1.num_batches_tracked'].dtype == torch.long and counter.item() == 0


def test_fill_batchnorm_counters_keeps_given_counters():
    target = tiny_target()
    converted = dict(target, **{'1.num_batches_tracked': torch.tensor(7)})
    assert fill_batchnorm_counters(converted, target) == ([], [])
    assert converted['1.num_batches_tracked'].item() == 7


def test_report_names_each_kind_of_bad_key():
    target = tiny_target()
    report = ConversionReport([(r'^pooler\.', 'pooler, unused')])
    report.unmapped.append('src.unknown.weight')
    assert not report.in_target('src.head.weight', 'head.weight', target)  # not in the model, not optional
    assert not report.shape_matches('src.conv.weight', '0.weight', torch.zeros(5, 3, 1, 1), target)
    report.incomplete.append('src.k + ? -> 2.weight (needs 2 parts)')
    converted = {k: v for k, v in target.items() if k not in ('0.weight', '2.bias')}
    with pytest.raises(ConversionError) as err:
        report.finish(converted, target)
    message = str(err.value)
    assert message.startswith('cannot convert the checkpoint:')
    for kind, title in PROBLEM_KINDS:
        assert f'1 {title}:' in message if kind != 'missing' else f'2 {title}:' in message
    assert 'src.unknown.weight' in message
    assert 'src.head.weight -> head.weight' in message
    assert 'src.conv.weight -> 0.weight: checkpoint (5, 3, 1, 1), model (4, 3, 1, 1)' in message
    assert 'src.k + ? -> 2.weight (needs 2 parts)' in message
    assert re.search(r'tensors of the model that the checkpoint does not provide:\n  0\.weight\n  2\.bias', message)
    # in the order of PROBLEM_KINDS
    positions = [message.index(title) for _, title in PROBLEM_KINDS]
    assert positions == sorted(positions)


def test_report_drops_optional_targets_with_their_reason():
    target = tiny_target()
    report = ConversionReport([(re.compile(r'^pooler\.'), 'pooler, unused'), (r'\.queue$', 'ITC queue')])
    assert not report.in_target(['a.pooler.w', 'b.pooler.w'], 'pooler.dense.weight', target)
    assert not report.in_target('q', 'itc.queue', target)
    assert report.dropped == [('a.pooler.w', 'pooler, unused'), ('b.pooler.w', 'pooler, unused'), ('q', 'ITC queue')]
    assert report.unexpected == [] and report.problems() == []
    assert optional_target_reason('head.weight', report.optional_targets) is None


def test_report_finish_orders_like_the_model_and_adds_counters():
    target = tiny_target()
    report = ConversionReport()
    converted = {k: torch.ones_like(v) for k, v in reversed(list(target.items()))
                 if not k.endswith('num_batches_tracked')}
    out, added = report.finish(converted, target)
    assert list(out) == list(target) and added == ['1.num_batches_tracked']
    report.raise_if_any()  # nothing wrong


def test_save_converted_checkpoint_writes_meta_and_logs(tmp_path):
    assert checkpoint_module.save_converted_checkpoint is save_converted_checkpoint  # the old import still works
    lines = []
    dst = str(tmp_path / 'sub' / 'out.pth')
    out = save_converted_checkpoint(dst, {'w': torch.zeros(2)}, dict(source='x', weights='model'),
                                    [('a', 'unused'), ('b', 'unused')], ['bn.num_batches_tracked'], 3, lines.append)
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['dropped_keys'] == ['a: unused', 'b: unused'] == out['meta']['dropped_keys']
    assert saved['meta']['added_keys'] == ['bn.num_batches_tracked']
    assert lines[0] == 'dropped 2 tensors: unused (e.g. a)' and 'converted 3 tensors' in lines[-1]


def test_build_target_model(tmp_path):
    config = tmp_path / 'cfg.py'
    config.write_text("model = dict(type='mmdet.ResNet', depth=18, base_channels=8, "
                      "out_indices=(3, ), norm_cfg=dict(type='BN'))\n")
    model = build_target_model(str(config), {'model.base_channels': 4})
    assert model.state_dict()['conv1.weight'].shape == (4, 3, 7, 7)


@pytest.mark.parametrize('tool', ['mdetr_to_mmvlg.py', 'fiber_to_mmvlg.py'])
def test_converters_use_the_shared_module(tool):
    import importlib.util
    path = osp.join(REPO_ROOT, 'tools', 'model_converters', tool)
    spec = importlib.util.spec_from_file_location('_mmvlg_' + tool[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.ConversionError is ConversionError and module.build_target_model is build_target_model


def test_tied_tensors_checked_and_completed():
    emb = nn.Embedding(5, 3)
    dec = nn.Linear(3, 5, bias=False)
    dec.weight = emb.weight
    target = nn.ModuleDict(dict(emb=emb, dec=dec)).state_dict(keep_vars=True)
    assert tied_groups(target) == [['emb.weight', 'dec.weight']]
    report = ConversionReport()
    converted = {'emb.weight': torch.ones(5, 3)}
    fill_tied_tensors(converted, target, {'emb.weight': 'src.emb'}, report)
    assert converted['dec.weight'] is converted['emb.weight'] and not report.mismatched
    converted = {'emb.weight': torch.ones(5, 3), 'dec.weight': torch.zeros(5, 3)}
    fill_tied_tensors(converted, target, {'emb.weight': 'a', 'dec.weight': 'b'}, report)
    assert report.mismatched == ['a -> emb.weight and b -> dec.weight: one tensor in the model (tied), different in '
                                 'the checkpoint']


def test_keep_model_tensors():
    target = {'head.weight': torch.ones(2), 'neck.mask': torch.full((2, ), 3.0), 'other': torch.zeros(1)}
    converted = {'head.weight': torch.zeros(2)}
    kept = keep_model_tensors(converted, target, [(r'neck\.mask', 'not in the source')])
    assert kept == [('neck.mask', 'not in the source')] and set(converted) == {'head.weight', 'neck.mask'}
    assert torch.equal(converted['neck.mask'], target['neck.mask'])
    assert converted['neck.mask'] is not target['neck.mask']  # a copy
    assert torch.equal(converted['head.weight'], torch.zeros(2))  # a converted tensor is never replaced


def test_load_weights_entry(tmp_path):
    state = {'module.a': torch.ones(1), 'module.b': torch.zeros(2)}
    torch.save({'model': state, 'config': {'x': 1}}, tmp_path / 'wrapped.pth')
    read, entry = load_weights_entry(str(tmp_path / 'wrapped.pth'), 'model', 'X', '{"model": state_dict}')
    assert entry == 'model' and list(read) == ['a', 'b']
    torch.save({'a': torch.ones(1)}, tmp_path / 'bare.pth')
    assert load_weights_entry(str(tmp_path / 'bare.pth'), 'model', 'X', '...')[1] == '(state dict)'
    torch.save({'model': {'a': torch.ones(1), 'step': 3}}, tmp_path / 'bad.pth')
    with pytest.raises(ConversionError, match=r'the model entry holds non-tensor entries \[.step.\]: not a '
                       r'checkpoint of the authors. X code \(\{"model": state_dict\}\)'):
        load_weights_entry(str(tmp_path / 'bad.pth'), 'model', 'X', '{"model": state_dict}')
    torch.save([torch.ones(1)], tmp_path / 'list.pth')
    with pytest.raises(ConversionError, match='not a dict'):
        load_weights_entry(str(tmp_path / 'list.pth'), 'model', 'X', '...')
