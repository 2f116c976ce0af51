"""Bad-input catalogue, issue 13 items 4-6: a run killed with SIGKILL and resumed ends bit-identical to one
that was not interrupted; checkpoint saves are atomic; ``--resume`` never starts over silently; SiRi's
summary survives a kill and a torn file.

The end-to-end runs are real ``tools/train.py`` processes on the shipped SynthRef configs (MDETR* and
SiRi), scaled down (a generated SynthRef of 2 scenes per split, batch 2, 2 iterations per epoch) with the
shipped pipeline (random flip, one persistent dataloader worker) and dropout turned on (0.1). Killing uses
the test-only hooks of ``catalogue_hooks.py``.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmvlg.testing import tiny_synthref
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils.atomic_io import atomic_write_bytes, remove_stale_temporaries
from mmvlg.utils.resume import find_resume_checkpoint

HERE = osp.dirname(osp.abspath(__file__))

CONFIG = '''
_base_ = ['{base}']
custom_imports = dict(imports=['catalogue_hooks'], allow_failed_imports=False)
_layer = dict(embed_dims=32, num_heads=4, feedforward_channels=64, dropout=0.1)
model = dict(
    backbone=dict(base_channels=8),
    neck=dict(in_channels=(16, 32), mid_channels=32, out_channels=32),
    language_model=dict(model_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=64, hidden_dropout_prob=0.1)),
    positional_encoding=dict(num_feats=16),
    encoder=dict(num_layers=1, layer_cfg=_layer),
    decoder=dict(num_layers=1, layer_cfg=_layer),
    bbox_head=dict(embed_dims=32),
    token_grounding_head=dict(embed_dims=32))
_data = dict(data_root='{root}', generate=None)
train_dataloader = dict(batch_size=2, dataset=_data)
val_dataloader = dict(batch_size=4, dataset=_data)
test_dataloader = dict(batch_size=4)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3)]
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0)  # the same seed for the reference and the interrupted run
'''


def write_config(tmp_path, name: str, base: str, root: str, extra: str = '') -> str:
    path = str(tmp_path / f'{name}.py')
    with open(path, 'w') as f:
        f.write(CONFIG.format(base=osp.join(REPO_ROOT, base), root=root) + extra)
    return path


def train(config: str, work_dir: str, *args: str, expect_kill: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(p for p in (HERE, os.environ.get('PYTHONPATH')) if p))
    proc = subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', work_dir, *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=400)
    if expect_kill:
        assert proc.returncode == -9, proc.stdout[-3000:] + proc.stderr[-3000:]
    else:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def final_state(work_dir: str, name: str) -> dict:
    return torch.load(osp.join(work_dir, name), map_location='cpu', weights_only=True)['state_dict']


def assert_bit_identical(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f'{len(differing)} tensors differ, e.g. {differing[:5]}'


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    return tiny_synthref(str(tmp_path_factory.mktemp('synthref') / 'data'), num_scenes=2, image_size=64)


MDETR_BASE = 'configs/mdetr/mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py'
SIRI_BASE = 'configs/siri/siri_mdetr-star_r18-slim_bert-mini_1xb32-3e-2x1e_synthref.py'


def test_mdetr_resume_after_kill_is_bit_identical(tmp_path, data_root):
    """Item 4 (MDETR*): SIGKILL right after the epoch-2 checkpoint (before its validation), ``--resume``; the
    final weights equal those of the uninterrupted run bit for bit, with flip and dropout on.
    Item 5: ``--resume`` then finds the checkpoint through ``last_checkpoint``."""
    extra = 'train_cfg = dict(max_epochs=3)\n'
    plain = write_config(tmp_path, 'plain', MDETR_BASE, data_root, extra)
    killed = write_config(tmp_path, 'killed', MDETR_BASE, data_root,
                          extra + 'custom_hooks = [dict(type="KillAfterCheckpointHook", epoch=2)]\n')
    reference, interrupted = str(tmp_path / 'reference'), str(tmp_path / 'interrupted')
    train(plain, reference)
    train(killed, interrupted, expect_kill=True)
    assert not osp.exists(osp.join(interrupted, 'epoch_3.pth'))
    proc = train(plain, interrupted, '--resume')
    assert 'resumed epoch: 2' in proc.stdout + proc.stderr
    assert_bit_identical(final_state(interrupted, 'epoch_3.pth'), final_state(reference, 'epoch_3.pth'))
    ckpt = torch.load(osp.join(reference, 'epoch_3.pth'), map_location='cpu', weights_only=True)
    assert set(ckpt['random_state']) >= {'python', 'numpy', 'torch'}


def test_siri_resume_across_round_boundary_with_torn_summary(tmp_path, data_root):
    """Items 4 and 6 (SiRi): SIGKILL after the checkpoint that ends round 0 (before its validation and the
    summary write), the summary then torn on disk; ``--resume`` re-initializes once, re-runs the validation
    that was lost, rewrites the summary, and ends bit-identical to the uninterrupted run with the same
    summary history."""
    extra = '''
initial_epochs = 1
siri_hook = dict(type='SiRiHook', initial=1, round_length=1, num_rounds=2, keep=('encoder', ), reinit='initial',
                 reset_optimizer='all', metric='refexp/Prec@1', rule='greater',
                 round_param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3)])
train_cfg = dict(max_epochs=3)
'''
    plain = write_config(tmp_path, 'plain', SIRI_BASE, data_root, extra + 'custom_hooks = [siri_hook]\n')
    killed = write_config(tmp_path, 'killed', SIRI_BASE, data_root,
                          extra + 'custom_hooks = [siri_hook, dict(type="KillAfterCheckpointHook", epoch=1)]\n')
    reference, interrupted = str(tmp_path / 'reference'), str(tmp_path / 'interrupted')
    train(plain, reference)
    train(killed, interrupted, expect_kill=True)
    summary_file = osp.join(interrupted, 'siri_summary.json')
    with open(summary_file, 'w') as f:
        f.write('{"metric": "refexp/Prec@1", "history": [{"round": 0, "ep')  # torn
    proc = train(plain, interrupted, '--resume')
    log = proc.stdout + proc.stderr
    assert 'siri_summary.json is unreadable' in log and 'running it again' in log
    assert_bit_identical(final_state(interrupted, 'epoch_3.pth'), final_state(reference, 'epoch_3.pth'))
    with open(osp.join(reference, 'siri_summary.json')) as f:
        expected = json.load(f)
    with open(summary_file) as f:
        resumed = json.load(f)
    assert resumed['history'] == expected['history'] and len(expected['history']) == 3
    assert resumed['rounds'] == expected['rounds']


def test_kill_during_checkpoint_write_keeps_the_previous_one(tmp_path, data_root):
    """Item 5: SIGKILL while epoch_2.pth is being written leaves no file of that name (only a temporary one,
    cleaned by the next save) and ``last_checkpoint`` names epoch_1.pth; ``--resume`` continues from it."""
    extra = 'train_cfg = dict(max_epochs=2)\n'
    plain = write_config(tmp_path, 'plain', MDETR_BASE, data_root, extra)
    killed = write_config(tmp_path, 'killed', MDETR_BASE, data_root,
                          extra + 'custom_hooks = [dict(type="KillDuringSaveHook", epoch=2)]\n')
    work = str(tmp_path / 'work')
    train(killed, work, expect_kill=True)
    assert not osp.exists(osp.join(work, 'epoch_2.pth'))
    assert [f for f in os.listdir(work) if f.startswith('.epoch_2.pth.tmp-')]
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip().endswith('epoch_1.pth')
    proc = train(plain, work, '--resume')
    assert 'epoch_1.pth' in proc.stdout + proc.stderr
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    assert not [f for f in os.listdir(work) if '.tmp-' in f]


def test_resume_skips_a_truncated_checkpoint_and_refuses_to_start_over(tmp_path):
    """Item 5: a truncated newest checkpoint and no (or an empty) ``last_checkpoint``: the newest readable
    one is taken; when none is readable, resume stops with an error instead of training from scratch."""
    work = tmp_path / 'work'
    work.mkdir()
    assert find_resume_checkpoint(str(work)) is None  # nothing there: a fresh start is right
    old, new = str(work / 'epoch_1.pth'), str(work / 'epoch_2.pth')
    torch.save(dict(state_dict=dict(w=torch.ones(1))), old)
    torch.save(dict(state_dict=dict(w=torch.ones(1000))), new)
    with open(new, 'rb') as f:
        data = f.read()
    with open(new, 'wb') as f:
        f.write(data[:len(data) // 2])
    os.utime(old, (1, 1))
    assert find_resume_checkpoint(str(work)) == old
    (work / 'last_checkpoint').write_text('')
    assert find_resume_checkpoint(str(work)) == old
    (work / 'last_checkpoint').write_text(new)
    assert find_resume_checkpoint(str(work)) == old
    with open(old, 'wb') as f:
        f.write(b'')
    with pytest.raises(RuntimeError, match='none is readable'):
        find_resume_checkpoint(str(work))


def test_runner_resume_uses_the_robust_finder():
    """Item 5: MMEngine's Runner (``resume=True`` without ``load_from``) looks checkpoints up with mmvlg's
    finder, and CheckpointHook writes ``last_checkpoint`` atomically."""
    import mmengine.hooks.checkpoint_hook as checkpoint_hook
    import mmengine.runner.runner as runner_module

    import mmvlg  # noqa: F401
    from mmvlg.utils.atomic_io import _atomic_text_open
    assert runner_module.find_latest_checkpoint is find_resume_checkpoint
    assert checkpoint_hook.open is _atomic_text_open


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    """Item 5: an exception during a write leaves the previous file as it was and no temporary file;
    temporary files of dead writers are cleaned, those of live ones are not."""
    path = str(tmp_path / 'x.bin')
    atomic_write_bytes(path, b'old')

    class Boom(Exception):
        pass

    from mmvlg.utils.atomic_io import atomic_write
    with pytest.raises(Boom):
        with atomic_write(path) as f:
            f.write(b'new, half')
            raise Boom
    assert open(path, 'rb').read() == b'old'
    assert os.listdir(tmp_path) == ['x.bin']
    dead = tmp_path / '.x.bin.tmp-999999999-0'
    live = tmp_path / f'.x.bin.tmp-{os.getpid()}-77'
    dead.write_bytes(b'partial')
    live.write_bytes(b'partial')
    assert remove_stale_temporaries(str(tmp_path)) == 1
    assert not dead.exists() and live.exists()


def _flip_dataset(data_root: str):
    from mmvlg.datasets import SynthRefDataset
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'),
                dict(type='GroundingRandomFlip', prob=0.5), dict(type='PackGroundingInputs')]
    return SynthRefDataset(data_root=data_root, ann_file='annotations/finetune_synthref_train.json',
                           data_prefix=dict(img='images/'), pipeline=pipeline)


def _epoch_images(loader) -> list:
    return [item['inputs'].clone() for batch in loader for item in batch]


def test_sample_seeding_is_independent_of_workers(data_root):
    """Item 4: with per-sample seeding the random flips of an epoch are the same whether the samples are
    loaded in the main process or by persistent workers that already served other epochs, and they
    change from epoch to epoch; the main process's own random stream is left alone."""
    from torch.utils.data import DataLoader

    from mmvlg.utils import register_all_modules
    register_all_modules()
    dataset = _flip_dataset(data_root)
    dataset.set_sample_seeding(True, seed=7, epoch=0)
    main = DataLoader(dataset, batch_size=2, num_workers=0, collate_fn=list)
    workers = DataLoader(dataset, batch_size=2, num_workers=2, persistent_workers=True, collate_fn=list)
    per_epoch = []
    for epoch in range(4):
        dataset.set_sample_epoch(epoch)
        torch.manual_seed(123)
        before = torch.get_rng_state()
        direct = [dataset[i]['inputs'] for i in range(len(dataset))]
        assert torch.equal(torch.get_rng_state(), before)  # the pipeline's draws came from the sample's seed
        in_main = _epoch_images(main)
        assert all(torch.equal(a, b) for a, b in zip(direct, in_main))
        by_workers = _epoch_images(workers)
        assert all(torch.equal(a, b) for a, b in zip(in_main, by_workers))
        per_epoch.append(in_main)
    assert any(not all(torch.equal(a, b) for a, b in zip(per_epoch[0], other)) for other in per_epoch[1:])
    dataset.set_sample_epoch(2)
    assert all(torch.equal(a, b) for a, b in zip(_epoch_images(main), per_epoch[2]))


def test_iteration_loop_with_infinite_sampler_and_persistent_worker(tmp_path):
    """Item 4 with the shipped iteration-based configs (InfiniteSampler, one persistent dataloader worker):
    RandomStateHook turns per-sample seeding on without restarting the loop's iterator, which would close the
    sampler's shared index generator (the first batch then raised StopIteration)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmvlg.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'fiber',
                                   'fiber-vqa_swin-nano_roberta-tiny_1xb32-2k_synthref-vqa.py'))
    generate = dict(num_scenes=dict(train=4, val=2), questions_per_scene=3, image_size=32, seed=0)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=4)
        cfg[loader].dataset.update(data_root=str(tmp_path / 'vqa'), generate=generate)
    assert cfg.train_dataloader.num_workers == 1 and cfg.train_dataloader.persistent_workers
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'
    cfg.train_cfg.update(max_iters=4, val_interval=100)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3)]
    cfg.default_hooks.checkpoint.interval = 100
    cfg.custom_hooks = [dict(type='RandomStateHook')]
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 4
    datasets = runner.train_loop.dataloader.dataset
    assert datasets.sample_seeding
