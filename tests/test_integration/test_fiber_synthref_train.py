"""The tiny fine-grained FIBER SynthRef config trains for a few iterations with MMEngine's Runner (as
tools/train.py does), validates with Prec@k on SynthRef val, saves a checkpoint and tests on val/testA/testB."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

CONFIG = osp.join(REPO_ROOT, 'configs', 'fiber', 'fiber_swin-nano_roberta-tiny_1xb16-3k_synthref.py')
NUM_SCENES = dict(train=4, val=2, testA=2, testB=2)


@pytest.mark.filterwarnings('ignore')
def test_tiny_fiber_synthref_trains_and_tests(tmp_path):
    register_all_modules()
    cfg = Config.fromfile(CONFIG)
    assert cfg.model.type == 'FIBER' and cfg.model.backbone.visual_checkpoint is None
    assert cfg.model.backbone.num_fusion_layers == 2 and cfg.model.bbox_head.lang_dim == 64
    datasets = [cfg.train_dataloader.dataset, cfg.val_dataloader.dataset, *cfg.test_dataloader.dataset.datasets]
    for ds in datasets:
        ds.data_root = str(tmp_path / 'synthref')
        ds.generate.update(num_scenes=NUM_SCENES, image_size=128)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].batch_size = 4
    cfg.train_cfg.update(max_iters=3, val_interval=3)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3)]
    cfg.default_hooks.checkpoint.interval = 3
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = 'fiber_synthref_tiny'
    cfg.visualizer.name = 'fiber_synthref_tiny_vis'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert osp.isfile(osp.join(cfg.work_dir, 'iter_3.pth'))
    scalars = runner.message_hub.log_scalars
    for key in ('train/loss_cls', 'train/loss_bbox', 'train/loss_centerness', 'val/refexp/Prec@1'):
        assert key in scalars, key
    metrics = runner.test()
    assert any(k.endswith('Prec@1') for k in metrics) and all(0 <= v <= 100 for v in metrics.values())
