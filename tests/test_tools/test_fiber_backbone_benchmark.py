"""Tests of tools/analysis_tools/fiber_backbone_benchmark.py (in-process, CPU, tiny model)."""
import importlib.util
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'analysis_tools', 'fiber_backbone_benchmark.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('fiber_backbone_benchmark', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_params_and_timings_of_the_tiny_backbone():
    tool = load_tool()
    res = tool.main(['--size', 'tiny', '--batch', '1', '--shape', '32', '32', '--text-len', '4', '--iters', '1',
                     '--warmup', '0'])
    p = res['params']
    assert p['fusion_m'] > 0 and p['total_m'] == pytest.approx(p['unimodal_m'] + p['fusion_m'])
    assert res['num_fusion_layers'] == 2
    assert set(res['sec_per_iter']) == {f'{m}_{k}' for m in ('infer', 'train')
                                        for k in ('fusion', 'no_fusion', 'fusion_overhead')}
    assert all(res['sec_per_iter'][f'{m}_{k}']['median'] > 0 for m in ('infer', 'train')
               for k in ('fusion', 'no_fusion'))


def test_base_size_config_has_the_paper_architecture():
    """Swin-B (2-2-18-2, window 12) + RoBERTa-base sizes, fusion in the top 6 layers: 4 blocks of stage 3 and
    the 2 of stage 4, RoBERTa layers 6-11 (the model itself is built in the README's command only)."""
    cfg = load_tool().backbone_config('base')
    assert cfg['visual']['depths'] == (2, 2, 18, 2) and cfg['visual']['window_size'] == 12
    text = cfg['language_model']['model_config']
    assert (text['hidden_size'], text['num_hidden_layers'], text['vocab_size']) == (768, 12, 50265)
    assert cfg['num_fusion_layers'] == 6
