"""Coarse-to-fine: a fine-grained FIBER detector starts from a coarse-grained checkpoint (every backbone parameter
loaded, the detection head fresh)."""
import copy

import torch

from mmvlg.registry import MODELS
from mmvlg.testing import get_config, tiny_fiber_coarse_config, tiny_fiber_config
from mmvlg.utils import register_all_modules

register_all_modules()


def test_fine_grained_detector_from_coarse_checkpoint(tmp_path):
    torch.manual_seed(0)
    coarse = MODELS.build(tiny_fiber_coarse_config())
    coarse.init_weights()
    with torch.no_grad():  # make the coarse weights recognizable (and the gates non-zero)
        for p in coarse.parameters():
            p.add_(0.01)
    ckpt = tmp_path / 'coarse.pth'
    torch.save(dict(state_dict=coarse.state_dict(), meta=dict(iter=1)), ckpt)

    cfg = tiny_fiber_config()
    torch.manual_seed(1)
    fresh = MODELS.build(copy.deepcopy(cfg))
    fresh.init_weights()
    cfg['backbone']['init_cfg'] = dict(type='Pretrained', checkpoint=str(ckpt), prefix='backbone.')
    torch.manual_seed(1)
    fine = MODELS.build(cfg)
    fine.init_weights()

    coarse_sd, fine_sd = coarse.state_dict(), fine.state_dict()
    shared = [k for k in fine_sd if k in coarse_sd]
    backbone = [k for k in fine_sd if k.startswith('backbone.')]
    # every backbone tensor of the coarse model is loaded; only the Swin's stage-2/3 output norms are new
    assert set(backbone) - set(shared) == {k for k in backbone if '.visual.norm1.' in k or '.visual.norm2.' in k}
    assert any('i2t_attns' in k for k in shared) and any('language_model' in k for k in shared)
    for k in shared:
        assert torch.equal(fine_sd[k], coarse_sd[k]), k
    # the detection parts start fresh: the same as a model built without the coarse checkpoint
    fresh_sd = fresh.state_dict()
    for k in fine_sd:
        if k.startswith(('neck.', 'bbox_head.')):
            assert torch.equal(fine_sd[k], fresh_sd[k]), k
    assert not torch.equal(fine_sd['backbone.i2t_attns.0.alpha'], fresh_sd['backbone.i2t_attns.0.alpha'])


def test_coarse_init_config():
    cfg = get_config('fiber/fiber_swin-b_roberta-base_coarse-init_8xb2-20e_refcoco.py')
    assert cfg.model.type == 'FIBER' and cfg.model.backbone.visual_checkpoint is None
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=cfg.coarse_checkpoint, prefix='backbone.')


def test_coarse_reference_config_has_the_paper_settings():
    cfg = get_config('fiber/fiber-coarse_swin-b_roberta-base_64xb64-100k_coco-vg-sbu-cc.py')
    bb = cfg.model.backbone
    assert cfg.model.type == 'FIBERCoarse' and bb.num_fusion_layers == 6
    assert bb.visual.embed_dims == 128 and bb.visual.depths == (2, 2, 18, 2) and bb.visual.window_size == 12
    assert bb.language_model.name_or_path == 'roberta-base'
    assert cfg.train_cfg.max_iters == 100000 and cfg.train_dataloader.batch_size * 64 == 4096
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys['backbone.i2t_attns'].lr_mult == 5.0  # 5e-4
    assert cfg.param_scheduler[0].end == 1000 and cfg.param_scheduler[1].end_factor == 0.0
    assert dict(type='mmdet.Resize', scale=(384, 384), keep_ratio=False) in cfg.train_pipeline
