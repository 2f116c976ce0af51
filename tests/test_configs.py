"""Every config under ``configs/`` parses (its ``_base_`` chain included) and names only registered components;
every metafile (OpenMMLab model-index format) lists exactly its algorithm's configs with well-formed entries.

Building the full-size models would need weights that cannot be downloaded here; the tiny configs are built and
trained by the integration tests. This test catches a broken ``_base_`` path, a duplicate key among bases, a typo
in a ``type`` and a component that was renamed without updating the configs.
"""
import glob
import numbers
import os.path as osp
from typing import Iterator, Tuple

import pytest
import yaml
from mmengine.config import Config

from mmvlg import registry as R
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

register_all_modules()

CONFIGS = sorted(p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p.split(osp.sep))
REGISTRIES = [getattr(R, n) for n in dir(R) if n.isupper() and hasattr(getattr(R, n), 'get')]
# functions (a dataloader's collate_fn, e.g. nlvr2_collate) live in MMEngine's registry: mmvlg has none of its own
REGISTRIES.append(__import__('mmengine.registry', fromlist=['FUNCTIONS']).FUNCTIONS)
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


# ---------------------------------------------------------------------------------------------------------
# metafiles: model-index.yml -> configs/<algo>/metafile.yml
# ---------------------------------------------------------------------------------------------------------
METAFILES = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', '*', 'metafile.yml')))
ALGORITHMS = sorted(d for d in glob.glob(osp.join(REPO_ROOT, 'configs', '*'))
                    if osp.isdir(d) and osp.basename(d) != '_base_')


def _load_yaml(path: str) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def _is_url(value) -> bool:
    return isinstance(value, str) and value.startswith(('http://', 'https://'))


def test_model_index_imports_every_metafile():
    index = _load_yaml(osp.join(REPO_ROOT, 'model-index.yml'))
    imports = index['Import']
    assert len(imports) == len(set(imports))
    assert sorted(osp.join(REPO_ROOT, p) for p in imports) == METAFILES
    assert [osp.dirname(p) for p in METAFILES] == ALGORITHMS  # one metafile per algorithm folder


@pytest.mark.parametrize('path', METAFILES, ids=[osp.relpath(p, REPO_ROOT) for p in METAFILES])
def test_metafile_entries(path):
    meta = _load_yaml(path)
    assert set(meta) == {'Collections', 'Models'}, path
    collections = {}
    for c in meta['Collections']:
        assert isinstance(c['Name'], str) and c['Name'] not in collections, c
        assert _is_url(c['Paper']['URL']) and isinstance(c['Paper']['Title'], str), c['Name']
        assert osp.isfile(osp.join(REPO_ROOT, c['README'])), c['README']
        for key in ('Training Data', 'Training Techniques', 'Architecture'):
            assert isinstance(c['Metadata'][key], list) and c['Metadata'][key], (c['Name'], key)
        collections[c['Name']] = c
    folder = osp.relpath(osp.dirname(path), REPO_ROOT)
    names = []
    for m in meta['Models']:
        name = m['Name']
        names.append(name)
        assert m['In Collection'] in collections, name
        # the config exists, lies in this algorithm's folder and gives the model its name
        assert m['Config'] == f'{folder}/{name}.py', name
        assert osp.isfile(osp.join(REPO_ROOT, m['Config'])), m['Config']
        metadata = m['Metadata']
        assert isinstance(metadata['Batch Size'], int) and metadata['Batch Size'] > 0, name
        assert sum(k in metadata for k in ('Epochs', 'Iterations')) == 1, name
        for key, value in metadata.items():
            assert isinstance(value, (str, numbers.Number)), (name, key, value)
        for result in m.get('Results', []):
            assert set(result) == {'Task', 'Dataset', 'Metrics'}, (name, result)
            assert isinstance(result['Task'], str) and isinstance(result['Dataset'], str), name
            metrics = result['Metrics']
            assert isinstance(metrics, dict) and metrics, name
            for key, value in metrics.items():
                assert isinstance(key, str) and isinstance(value, numbers.Number) and not isinstance(value, bool), \
                    (name, key, value)
        if 'Weights' in m:
            assert _is_url(m['Weights']), name
        if 'Converted From' in m:
            assert set(m['Converted From']) <= {'Weights', 'Code'} and _is_url(m['Converted From']['Code']), name
            if 'Weights' in m['Converted From']:
                assert _is_url(m['Converted From']['Weights']), name
        assert set(m) <= {'Name', 'In Collection', 'Config', 'Metadata', 'Results', 'Weights', 'Converted From',
                          'Paper'}, (name, set(m))
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]
    configs = sorted(osp.splitext(osp.basename(p))[0] for p in glob.glob(osp.join(osp.dirname(path), '*.py')))
    assert sorted(names) == configs  # every config of the folder, and nothing else


def test_model_names_are_unique_across_metafiles():
    names = [m['Name'] for p in METAFILES for m in _load_yaml(p)['Models']]
    assert len(names) == len(set(names))


def test_config_names_have_batch_and_schedule():
    """MMDetection's naming: {algorithm}_{components}_{N}xb{M}-{schedule}_{dataset}.py."""
    import re
    pattern = re.compile(r'^[a-z0-9+-]+(_[a-z0-9+.-]+)*_\d+xb\d+-[0-9a-z-]+_[a-z0-9+-]+$')
    for path in CONFIGS:
        name = osp.splitext(osp.basename(path))[0]
        assert pattern.match(name), name


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_auto_scale_lr_base_batch_is_the_configs_batch(path):
    """Issue 15, Tools item 3: ``--auto-scale-lr`` scales the learning rate by (GPUs x batch per GPU) /
    ``auto_scale_lr.base_batch_size``, so the base batch must be the one the config's learning rate was set for:
    the N x M of its name (``NxbM``), and the train dataloader's M."""
    import re
    name = osp.splitext(osp.basename(path))[0]
    gpus, per_gpu = (int(v) for v in re.search(r'_(\d+)xb(\d+)-', name).groups())
    cfg = Config.fromfile(path)
    if 'train_dataloader' not in cfg:
        return  # a test-only config (a released checkpoint's architecture): nothing to scale
    assert 'auto_scale_lr' in cfg, f'{name}: no auto_scale_lr (base_batch_size={gpus * per_gpu})'
    assert cfg.auto_scale_lr.base_batch_size == gpus * per_gpu, (
        f'{name}: auto_scale_lr.base_batch_size {cfg.auto_scale_lr.base_batch_size} is not the {gpus}x{per_gpu} '
        'batch of its name')
    batch = cfg.train_dataloader.batch_size
    if cfg.get('train_cfg', {}).get('mode') == 'merge':  # RegionStepTrainLoop: pairs and region images in one batch
        batch += cfg.train_cfg.region_dataloader.batch_size
    assert batch == per_gpu, f'{name}: train batch per GPU is not {per_gpu}'


@pytest.mark.parametrize('path', [p for p in CONFIGS if 'mdetr-star_r101' in osp.basename(p)], ids=osp.basename)
def test_mdetr_star_reference_configs_train_layer2_to_4_only(path):
    """MDETR's and the SiRi authors' code freeze the ImageNet ResNet's stem and layer1 (and every BatchNorm)."""
    backbone = Config.fromfile(path).model.backbone
    assert backbone.frozen_stages == 1 and backbone.norm_eval and not backbone.norm_cfg.requires_grad
