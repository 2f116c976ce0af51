"""Every config under ``configs/`` parses (its ``_base_`` chain included) and names only registered components.

Building the full-size models would need weights that cannot be downloaded here; the tiny configs are built and
trained by the integration tests. This test catches a broken ``_base_`` path, a duplicate key among bases, a typo
in a ``type`` and a component that was renamed without updating the configs.
"""
import glob
import os.path as osp
from typing import Iterator, Tuple

import pytest
from mmengine.config import Config

from mmvlg import registry as R
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

register_all_modules()

CONFIGS = sorted(p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p.split(osp.sep))
REGISTRIES = [getattr(R, n) for n in dir(R) if n.isupper() and hasattr(getattr(R, n), 'get')]
# Dicts whose ``type`` is not a registry name: mmcv's NMS kind, the offline text encoder's tokenizer kind.
NOT_REGISTRY_TYPES = {'nms', 'tokenizer'}


def _types(obj, path: str = '') -> Iterator[Tuple[str, str]]:
    """(key path, type name) of every ``type`` string in a config tree."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == 'type' and isinstance(v, str):
                yield path, v
            else:
                yield from _types(v, f'{path}.{k}' if path else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _types(v, f'{path}.{i}')


def _registered(name: str) -> bool:
    for reg in REGISTRIES:
        try:
            if reg.get(name) is not None:
                return True
        except (KeyError, ImportError):  # an unknown scope prefix
            continue
    return False


def test_configs_found():
    assert len(CONFIGS) >= 40, CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(p, REPO_ROOT) for p in CONFIGS])
def test_config_parses_and_types_are_registered(path):
    cfg = Config.fromfile(path)
    assert 'model' in cfg, f'{path}: no model'
    for section in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if section in cfg and cfg[section] is not None:
            assert 'dataset' in cfg[section], f'{path}: {section} has no dataset'
    unknown = [f'{p} = {t!r}' for p, t in _types(cfg.to_dict())
               if p.rsplit('.', 1)[-1] not in NOT_REGISTRY_TYPES and not _registered(t)]
    assert not unknown, f'{path}: unregistered types: {unknown}'


def test_checker_flags_unknown_types():
    tree = dict(model=dict(type='MDETR', backbone=dict(type='mmdet.ResNet')), hooks=[dict(type='NoSuchHook')])
    assert sorted(_types(tree)) == [('hooks.0', 'NoSuchHook'), ('model', 'MDETR'), ('model.backbone', 'mmdet.ResNet')]
    assert _registered('MDETR') and _registered('mmdet.ResNet') and _registered('SiRiHook')
    assert not _registered('NoSuchHook') and not _registered('mmdet.NoSuchBackbone')
