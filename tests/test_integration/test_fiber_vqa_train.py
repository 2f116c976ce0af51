"""The tiny SynthRef-VQA FIBER config trains for a few iterations with MMEngine's Runner (as tools/train.py
does), validates with the VQA accuracy and saves a checkpoint."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

CONFIG = osp.join(REPO_ROOT, 'configs', 'fiber', 'fiber-vqa_swin-nano_roberta-tiny_1xb32-2k_synthref-vqa.py')


@pytest.mark.filterwarnings('ignore')
def test_tiny_vqa_finetuning_runs(tmp_path):
    register_all_modules()
    cfg = Config.fromfile(CONFIG)
    generate = dict(num_scenes=dict(train=4, val=2), questions_per_scene=3, image_size=32, seed=0)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=4, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.update(data_root=str(tmp_path / 'vqa'), generate=generate)
    cfg.train_cfg.update(max_iters=3, val_interval=3)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3)]
    cfg.default_hooks.checkpoint.interval = 3
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = 'fiber_vqa_tiny'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert osp.isfile(osp.join(cfg.work_dir, 'iter_3.pth'))
    scalars = runner.message_hub.log_scalars
    assert 'train/loss_vqa' in scalars and 'val/vqa/accuracy' in scalars
    assert 0 <= scalars['val/vqa/accuracy'].current() <= 100
