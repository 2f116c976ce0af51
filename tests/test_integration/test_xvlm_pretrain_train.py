"""The tiny SynthRef region-text X-VLM pre-training config trains for a few iterations with MMEngine's Runner (as
tools/train.py does): mixed region-text and image-text batches, every loss logged, retrieval validation with ITM
re-ranking, a checkpoint."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mmvlg.datasets.synthetic import caption_vocabulary
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

CONFIG = osp.join(REPO_ROOT, 'configs', 'xvlm', 'xvlm_vit-tiny_bert-tiny_1xb16-3k_synthref-regions.py')


@pytest.mark.filterwarnings('ignore')
def test_tiny_xvlm_pretraining_runs(tmp_path):
    register_all_modules()
    cfg = Config.fromfile(CONFIG)
    assert cfg.caption_vocab == caption_vocabulary()
    generate = dict(num_scenes=dict(train=6, val=3), image_size=32, seed=0)
    root = str(tmp_path / 'regions')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=4, num_workers=0, persistent_workers=False)
    for ds in (cfg.train_dataloader.dataset.datasets[0].dataset, cfg.train_dataloader.dataset.datasets[1],
               cfg.val_dataloader.dataset):
        ds.update(data_root=root, generate=generate)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_iters=3, val_interval=3)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=3)]
    cfg.model.rerank_cfg.k = 2
    cfg.default_hooks.checkpoint.interval = 3
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = 'xvlm_tiny'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert osp.isfile(osp.join(cfg.work_dir, 'iter_3.pth'))
    scalars = runner.message_hub.log_scalars
    for key in ('train/loss_itc', 'train/loss_itm', 'train/loss_mlm', 'train/loss_itc_region',
                'train/loss_mlm_region', 'train/loss_bbox', 'train/loss_iou', 'train/temperature',
                'val/retrieval/text_R@1', 'val/retrieval/R_mean'):
        assert key in scalars, key
    assert 0 <= scalars['val/retrieval/R_mean'].current() <= 100
