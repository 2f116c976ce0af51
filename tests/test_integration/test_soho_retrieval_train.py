"""SOHO retrieval fine-tuning end to end on the CPU: the tiny pre-training's model with the paper retrieval configs'
switches (ITM alone over every pair of the batch, the dictionary skipped), load_from a pre-training checkpoint
through the Runner with the COCO retrieval config's CheckpointKeysHook as an error, a few iterations, then the
retrieval validation (every pair scored by ITM, Recall@1/5/10)."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

TINY = osp.join(REPO_ROOT, 'configs', 'soho', 'soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions.py')
COCO = osp.join(REPO_ROOT, 'configs', 'soho', 'soho-retrieval_r101_bert-base_8xb24-20e_coco.py')
SWITCHES = ('mlm_head', 'itm_cfg', 'losses', 'use_dictionary')


@pytest.mark.filterwarnings('ignore')
def test_retrieval_fine_tuning_from_a_pretraining_checkpoint(tmp_path):
    from mmengine.runner import Runner
    register_all_modules()
    cfg, paper = Config.fromfile(TINY), Config.fromfile(COCO)
    torch.manual_seed(0)
    pre = MODELS.build(copy.deepcopy(cfg.model))
    pre.init_weights()
    with torch.no_grad():
        for p in pre.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    state = {k: v.clone() for k, v in pre.state_dict().items()}
    ckpt = str(tmp_path / 'pretrain.pth')
    torch.save(dict(state_dict=state, meta=dict()), ckpt)

    for key in SWITCHES:  # the paper config's retrieval switches on the tiny model
        cfg.model[key] = copy.deepcopy(paper.model[key])
    cfg.model.itm_cfg = dict(paper.model.itm_cfg)
    cfg.model.neck.dictionary = None
    generate = dict(num_scenes=dict(train=8, val=3), image_size=32, phrasings=['list', 'count'], seed=0)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=4, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.update(data_root=str(tmp_path / 'caps'), generate=generate)
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.param_scheduler = []
    cfg.optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-2))
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [dict(copy.deepcopy(h), on_mismatch='error') for h in paper.custom_hooks
                        if h['type'] == 'CheckpointKeysHook']
    cfg.load_from = ckpt
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    assert runner.model.neck.dictionary is None and runner.model.mlm_head is None
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert 'train/loss_itm' in scalars and 'train/loss_mlm' not in scalars and 'train/loss_mvm' not in scalars
    for key in ('val/retrieval/text_R@1', 'val/retrieval/image_R@10', 'val/retrieval/R_mean'):
        assert key in scalars and 0 <= scalars[key].current() <= 100, key
    after = runner.model.state_dict()
    # two AdamW steps (lr 1e-4) from the checkpoint: the pre-trained ITM head and transformer were loaded
    for key in ('itm_head.fc.weight', 'language_model.model.encoder.layer.1.attention.self.query.weight'):
        assert torch.allclose(after[key], state[key], atol=1e-3) and not torch.equal(after[key], state[key]), key
    assert torch.equal(after['neck.mask_embedding'], state['neck.mask_embedding'])  # frozen without MVM
