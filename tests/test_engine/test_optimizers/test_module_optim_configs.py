"""Every config under configs/ that trains with several optimizers (ModuleOptimWrapperConstructor) also sets the
model wrapper that steps them under distributed training (MMEngine's default DDP wrapper steps one optimizer
wrapper only and fails on an OptimWrapperDict)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import MODEL_WRAPPERS

from mmvlg.utils import register_all_modules

ROOT = osp.join(osp.dirname(__file__), '..', '..', '..', 'configs')


def _configs():
    return [p for p in sorted(glob.glob(osp.join(ROOT, '**', '*.py'), recursive=True))
            if f'{osp.sep}_base_{osp.sep}' not in p]


def test_every_multi_optimizer_config_sets_the_multi_optimizer_ddp_wrapper():
    register_all_modules()
    from mmvlg.engine import MultiOptimDistributedDataParallel
    checked, bad = [], []
    for path in _configs():  # the constructor may come from a _base_ file
        cfg = Config.fromfile(path)
        optim = cfg.get('optim_wrapper', None) or {}
        if optim.get('constructor', None) != 'ModuleOptimWrapperConstructor':
            continue
        checked.append(osp.relpath(path, ROOT))
        wrapper = cfg.get('model_wrapper_cfg', None) or {}
        # looked up as MMEngine's Runner.wrap_model does: in MMEngine's root registry (an mmvlg class by its
        # import path)
        cls = MODEL_WRAPPERS.get(wrapper.get('type', 'MMDistributedDataParallel'))
        if not (isinstance(cls, type) and issubclass(cls, MultiOptimDistributedDataParallel)):
            bad.append(osp.relpath(path, ROOT))
    assert checked, 'no config with ModuleOptimWrapperConstructor found under configs/'
    assert not bad, ("configs without model_wrapper_cfg=dict(type='mmvlg.engine.MultiOptimDistributedDataParallel'): "
                     f'{bad}')


@pytest.mark.parametrize('name', ['soho_r101_bert-base_32xb128-40e_coco-vg.py',
                                  'soho_r18_bert-base-3l_32xb128-40e_coco-vg.py'])
def test_frozen_backbone_configs_find_unused_parameters(name):
    """FreezeModulesHook under DDP needs find_unused_parameters=True (the hook refuses to start otherwise)."""
    cfg = Config.fromfile(osp.join(ROOT, 'soho', name))
    assert any(h['type'] == 'FreezeModulesHook' for h in cfg.custom_hooks)
    assert cfg.model_wrapper_cfg.find_unused_parameters is True
