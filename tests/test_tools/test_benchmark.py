"""Tests of tools/analysis_tools/benchmark.py (in-process, CPU, tiny model)."""
import importlib.util
import os.path as osp

import pytest

from mmvlg.testing import tiny_mdetr_config, tiny_synthref

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'analysis_tools', 'benchmark.py')
FIELDS = {'config', 'mode', 'device', 'batch', 'shape', 'amp', 'iters', 'images_per_s', 'sec_per_iter',
          'peak_memory_gib', 'peak_memory_kind', 'trainable_params_m', 'torch'}


def load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_tool', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(path, train_dataloader=None) -> str:
    model = tiny_mdetr_config()
    model['backbone']['init_cfg'] = dict(type='Pretrained', checkpoint='torchvision://resnet18')  # never fetched
    with open(path, 'w') as f:
        f.write(f"default_scope = 'mmvlg'\nmodel = {model!r}\n")
        f.write("optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4), "
                'clip_grad=dict(max_norm=0.1))\n')
        if train_dataloader is not None:
            f.write(f'train_dataloader = {train_dataloader!r}\n')
    return str(path)


def check(result: dict, mode: str, batch: int) -> None:
    assert FIELDS <= set(result)
    assert result['mode'] == mode and result['device'] == 'cpu' and result['batch'] == batch
    assert result['iters'] == 2 and result['peak_memory_kind'] == 'cpu_peak_rss'
    for key in ('images_per_s', 'sec_per_iter', 'peak_memory_gib', 'trainable_params_m'):
        assert result[key] > 0, key


@pytest.mark.parametrize('mode', ['train', 'infer'])
def test_benchmark_synthetic(tmp_path, capsys, mode):
    config = write_config(tmp_path / 'tiny_bench.py')
    tool = load_tool()
    args = [config, '--mode', mode, '--batch', '2', '--shape', '48', '64', '--iters', '2', '--warmup', '1',
            '--device', 'cpu', '--text', 'the red circle']
    result = tool.main(args + (['--amp'] if mode == 'infer' else []))
    check(result, mode, 2)
    assert result['shape'] == [48, 64] and result['amp'] is (mode == 'infer')
    assert abs(result['images_per_s'] * result['sec_per_iter'] - 2) < 1e-6
    assert tool.json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result


def test_benchmark_real_data(tmp_path):
    root = tiny_synthref(str(tmp_path / 'synthref'), num_scenes=2, image_size=48)
    loader = dict(batch_size=32, num_workers=0, persistent_workers=False, sampler=dict(type='DefaultSampler'),
                  dataset=dict(type='SynthRefDataset', data_root=root,
                               ann_file='annotations/finetune_synthref_train.json', data_prefix=dict(img='images/'),
                               pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'),
                                         dict(type='PackGroundingInputs')]))
    config = write_config(tmp_path / 'tiny_bench_real.py', loader)
    result = load_tool().main([config, '--mode', 'train', '--batch', '3', '--iters', '2', '--warmup', '0',
                               '--device', 'cpu', '--real-data'])
    check(result, 'train', 3)
    assert result['shape'] is None and result['real_data'] is True


def test_init_cfgs_set_aside():
    cfg = dict(backbone=dict(init_cfg=dict(type='Pretrained')), layers=[dict(init_cfg=1, pretrained='x')])
    assert load_tool().set_init_cfgs_aside(cfg) == dict(backbone=dict(init_cfg=None),
                                                        layers=[dict(init_cfg=None, pretrained=None)])
