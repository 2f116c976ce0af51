"""The tiny SynthRef X-VLM retrieval fine-tuning config trains for a few iterations with MMEngine's Runner (as
tools/train.py does), from scratch and from a tiny pre-training checkpoint (load_from: the pre-training model's
MLM and box heads are not in the retrieval model), with ITC + ITM only, retrieval validation with ITM re-ranking
and a checkpoint."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

CONFIG = osp.join(REPO_ROOT, 'configs', 'xvlm', 'xvlm_vit-tiny_bert-tiny_1xb16-1k_synthref-captions-retrieval.py')
PRETRAIN = osp.join(REPO_ROOT, 'configs', 'xvlm', 'xvlm_vit-tiny_bert-tiny_1xb16-3k_synthref-regions.py')


def _cfg(tmp_path, name):
    cfg = Config.fromfile(CONFIG)
    generate = dict(num_scenes=dict(train=6, val=3), image_size=32, seed=1)
    root = str(tmp_path / 'captions')
    for loader in ('train_dataloader', 'val_dataloader'):
        cfg[loader].update(batch_size=4, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.update(data_root=root, generate=generate)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2)]
    cfg.model.rerank_cfg.k = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(tmp_path / name)
    cfg.experiment_name = name
    return cfg


@pytest.mark.filterwarnings('ignore')
def test_tiny_xvlm_retrieval_finetuning_runs_from_scratch_and_from_pretraining(tmp_path):
    register_all_modules()
    # from scratch
    runner = Runner.from_cfg(_cfg(tmp_path, 'scratch'))
    assert runner.model.mlm_head is None and runner.model.bbox_head is None
    runner.train()
    assert osp.isfile(osp.join(runner.work_dir, 'iter_2.pth'))
    scalars = runner.message_hub.log_scalars
    for key in ('train/loss_itc', 'train/loss_itm', 'train/acc_itm', 'val/retrieval/text_R@1',
                'val/retrieval/image_R@10', 'val/retrieval/R_mean'):
        assert key in scalars, key
    assert 'train/loss_mlm' not in scalars and 'train/loss_bbox' not in scalars
    assert 0 <= scalars['val/retrieval/R_mean'].current() <= 100

    # from a (random) tiny pre-training checkpoint: every retrieval weight comes from it
    pretrained = MODELS.build(Config.fromfile(PRETRAIN).model)
    ckpt = str(tmp_path / 'pretrain.pth')
    torch.save(dict(state_dict=pretrained.state_dict(), meta=dict()), ckpt)
    cfg = _cfg(tmp_path, 'finetune')
    cfg.load_from = ckpt
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    own = runner.model.state_dict()
    assert set(own) < set(pretrained.state_dict())  # the MLM and box heads are left out
    for key, value in own.items():
        assert torch.equal(value, pretrained.state_dict()[key]), key
    runner.train()
    assert 'val/retrieval/R_mean' in runner.message_hub.log_scalars
