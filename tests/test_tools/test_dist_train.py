"""``tools/dist_train.sh CONFIG 2`` on CPU: two Gloo processes under DDP end with identical weights.

The SynthRef config (its model shrunk to 1+1 transformer layers) trains 3 iterations on a tiny generated
SynthRef; ``ParamChecksumHook`` compares the ranks' parameter digests after every iteration (``strict``: a
mismatch fails the run) and writes each rank's last digest, which the test compares. DDP runs with
``find_unused_parameters=False`` (MMEngine's default): it raises in the second iteration if a parameter got
no gradient, so the run also shows that MDETR* uses all of its parameters.
"""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

from mmvlg.testing import tiny_synthref
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import safe_load_checkpoint

CONFIG = osp.join(REPO_ROOT, 'configs', 'mdetr', 'mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py')

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason='needs torch.distributed with the Gloo backend')

TEST_CONFIG = """
_base_ = [{config!r}]
data_root = {data_root!r}
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, generate=None))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=3, val_interval=1000)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=3, save_best=None))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='SafeCheckpointHook'),
                dict(type='ParamChecksumHook', interval=1, out_dir='checksums', strict=True)]
randomness = dict(seed=0)
"""
CFG_OPTIONS = ['model.encoder.num_layers=1', 'model.decoder.num_layers=1']


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_dist_train_two_cpu_processes(tmp_path):
    data_root = tiny_synthref(str(tmp_path / 'synthref'), num_scenes=4, image_size=64)
    config = tmp_path / 'dist_cfg.py'
    config.write_text(TEST_CONFIG.format(config=CONFIG, data_root=data_root))
    work_dir = str(tmp_path / 'work')
    env = dict(os.environ, PORT=str(free_port()), CUDA_VISIBLE_DEVICES='', PYTHON=sys.executable)
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), str(config), '2', '--work-dir', work_dir,
         '--cfg-options', *CFG_OPTIONS],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    records = []
    for rank in (0, 1):
        with open(osp.join(work_dir, 'checksums', f'param_checksum_rank{rank}.json')) as f:
            records.append(json.load(f))
    assert [r['rank'] for r in records] == [0, 1]
    assert all(r['world_size'] == 2 and r['iter'] == 3 for r in records)
    assert records[0]['sha256'] == records[1]['sha256'], records
    assert records[0]['num_tensors'] > 50

    # The ranks agreed after every iteration (strict=True would have failed the run otherwise).
    log = proc.stdout + proc.stderr
    assert all(f'ParamChecksumHook: rank 0 iter {i}: sha256' in log for i in (1, 2, 3)), log[-3000:]
    # The checkpoint of rank 0 holds the trained iterations and loads safely.
    checkpoint = safe_load_checkpoint(osp.join(work_dir, 'iter_3.pth'))
    assert checkpoint['meta']['iter'] == 3
