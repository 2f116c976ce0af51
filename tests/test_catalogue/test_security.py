"""Bad-input catalogue, issue 13 items 1 and 3: no checkpoint source executes code, and a broken file is told
apart from an unsafe one.

Every scheme of MMEngine's ``CheckpointLoader`` is tried with a file whose unpickling would run a shell
command (``Evil``): served over HTTP from a loopback server started by the test, or planted in the hub cache
(``torchvision://``, ``open-mmlab://``, ``mmcls://``), or read through a file backend (``s3://``). Each one
must be refused with :class:`UnsafeCheckpointError` and the command must never run. A plain checkpoint over
the same paths must still load, and so must a checkpoint written by a plain MMEngine Runner.
"""
import functools
import http.server
import io
import os
import os.path as osp
import pickle
import threading
from collections import OrderedDict
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import (
    CheckpointLoader,
    _load_checkpoint,
    get_external_models,
    get_mmcls_models,
    get_torchvision_models,
    load_checkpoint,
)

import mmvlg  # noqa: F401  (installs the safe loaders)
from mmvlg.utils.checkpoint import (
    SAFE_SCHEMES,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    safe_load_checkpoint,
)


class Evil:
    """Unpickling this runs a shell command (it must never happen)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def write_evil(path: str, marker: str) -> None:
    torch.save(dict(state_dict=OrderedDict(weight=torch.ones(2, 2)), meta=dict(payload=Evil(marker))), path)


def write_good(path: str) -> dict:
    state = OrderedDict(weight=torch.arange(4.0).reshape(2, 2), bias=torch.zeros(2))
    torch.save(dict(state_dict=state, meta=dict(epoch=1)), path)
    return state


@pytest.fixture
def hub_dir(tmp_path):
    """An empty torch hub cache for the test (the real one is left alone)."""
    saved = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    yield str(tmp_path / 'hub' / 'checkpoints')
    torch.hub.set_dir(saved)


@pytest.fixture
def http_root(tmp_path):
    """A folder served by an HTTP server on 127.0.0.1 (a free port); yields (folder, base URL)."""
    root = tmp_path / 'served'
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield str(root), f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args) -> None:
        pass


def test_every_registered_scheme_is_a_weights_only_loader():
    """Item 1: all of MMEngine's schemes (local, http/https, torchvision/modelzoo, open-mmlab/openmmlab,
    mmcls, pavi, s3/petrel) are mmvlg's loaders."""
    ours = {loader.__name__ for loader in SAFE_SCHEMES.values()}
    for prefix, loader in CheckpointLoader._schemes.items():
        assert loader.__name__ in ours, (prefix, loader)
    for path in ['x.pth', 'http://h/x.pth', 'https://h/x.pth', 'torchvision://resnet50', 'modelzoo://resnet50',
                 'open-mmlab://resnet50_v1c', 'openmmlab://resnet50_v1c', 'mmcls://resnet50', 'pavi://x',
                 's3://bucket/x.pth', 'petrel://bucket/x.pth', 'cluster1:s3://bucket/x.pth']:
        assert CheckpointLoader._get_checkpoint_loader(path).__name__ in ours, path


def test_http_checkpoint_with_code_is_refused(tmp_path, hub_dir, http_root):
    """Item 1: ``http://...pth`` (as ``tools/test.py CHECKPOINT``, ``load_from`` or the inferencer's weights
    give it to MMEngine) is refused, and the payload never runs."""
    root, base = http_root
    marker = str(tmp_path / 'pwned')
    write_evil(osp.join(root, 'evil.pth'), marker)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth') as err:
        _load_checkpoint(f'{base}/evil.pth', map_location='cpu')
    assert 'system' in str(err.value) and base in str(err.value)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(torch.nn.Linear(2, 2), f'{base}/evil.pth')  # the cached copy is refused too
    assert osp.isfile(osp.join(hub_dir, 'evil.pth'))
    assert not osp.exists(marker)


def test_http_checkpoint_without_code_loads(hub_dir, http_root):
    root, base = http_root
    expected = write_good(osp.join(root, 'good.pth'))
    model = torch.nn.Linear(2, 2)
    load_checkpoint(model, f'{base}/good.pth', strict=True)
    assert torch.equal(model.weight.detach(), expected['weight'])


@pytest.mark.parametrize('scheme', ['torchvision://resnet18', 'modelzoo://resnet18', 'open-mmlab://resnet50_v1c',
                                    'openmmlab://resnet50_v1c', 'mmcls://resnet50'])
def test_poisoned_hub_cache_is_refused(tmp_path, hub_dir, scheme):
    """Item 1: the model-zoo schemes (``torchvision://resnet101`` is the base configs' init) read the hub
    cache; a file planted there is refused with weights_only=True, without any network access."""
    name = scheme.split('://', 1)[1]
    urls = {'torchvision': get_torchvision_models, 'modelzoo': get_torchvision_models,
            'open-mmlab': get_external_models, 'openmmlab': get_external_models,
            'mmcls': get_mmcls_models}[scheme.split('://')[0]]()
    os.makedirs(hub_dir, exist_ok=True)
    marker = str(tmp_path / 'pwned')
    write_evil(osp.join(hub_dir, osp.basename(urlparse(urls[name]).path)), marker)
    with pytest.raises(UnsafeCheckpointError, match='system'):
        _load_checkpoint(scheme, map_location='cpu')
    assert not osp.exists(marker)


def test_file_backend_scheme_is_refused(tmp_path, monkeypatch):
    """Item 1: ``s3://`` reads bytes through MMEngine's file backend; they are unpickled weights-only."""
    marker = str(tmp_path / 'pwned')
    buffer = io.BytesIO()
    torch.save(dict(meta=dict(payload=Evil(marker))), buffer)

    class FakeBackend:

        def get(self, filepath):
            return buffer.getvalue()

    import mmengine.fileio
    monkeypatch.setattr(mmengine.fileio, 'get_file_backend', lambda *a, **k: FakeBackend())
    with pytest.raises(UnsafeCheckpointError, match='s3://bucket/evil.pth'):
        _load_checkpoint('s3://bucket/evil.pth', map_location='cpu')
    assert not osp.exists(marker)


def test_scheme_registered_by_other_code_is_forced_weights_only(tmp_path):
    """Item 1: a loader that another package registers later and that calls ``torch.load(weights_only=False)``
    still cannot unpickle code."""
    marker = str(tmp_path / 'pwned')
    path = str(tmp_path / 'evil.pth')
    write_evil(path, marker)

    def load_from_thirdparty(filename, map_location=None):
        return torch.load(filename[len('thirdparty://'):], map_location=map_location, weights_only=False)

    CheckpointLoader.register_scheme('thirdparty://', load_from_thirdparty)
    try:
        with pytest.raises(UnsafeCheckpointError, match='thirdparty'):
            _load_checkpoint('thirdparty://' + path)
    finally:
        CheckpointLoader._schemes.pop('thirdparty://')
    assert not osp.exists(marker)
    assert os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD') is None  # the switch is set only during the call


def test_plain_mmengine_checkpoint_loads(tmp_path):
    """Issue 15 (MMDetection interoperability) with item 1's rule: a checkpoint as a plain MMEngine/MMDetection
    Runner writes it (its HistoryBuffers pickle their statistics functions through ``builtins.getattr``,
    numpy scalars in ``meta``) loads with weights_only=True."""
    buffer = HistoryBuffer()
    for v in (1.0, 2.0):
        buffer.update(v)
    path = str(tmp_path / 'mmdet.pth')
    torch.save(dict(state_dict=OrderedDict(w=torch.ones(2)), meta=dict(epoch=3, best=np.float64(0.5)),
                    message_hub=dict(log_scalars={'train/loss': buffer}, runtime_info=dict(), resumed_keys=dict())),
               path)
    loaded = safe_load_checkpoint(path)
    restored = loaded['message_hub']['log_scalars']['train/loss']
    assert type(restored) is HistoryBuffer and restored.current() == 2.0 and restored.mean() == 1.5
    assert loaded['meta']['best'] == 0.5


@pytest.mark.parametrize('target', ['ndarray_tofile', 'class_method', 'historybuffer_private'])
def test_getattr_reaches_nothing_but_history_buffer_statistics(tmp_path, target):
    """``builtins.getattr`` in a checkpoint is bound to a function that gives only HistoryBuffer's four
    statistics functions: ``getattr(<array>, 'tofile')`` (a bound method that writes files),
    ``getattr(ndarray, 'tofile')`` or a private HistoryBuffer attribute are refused."""
    marker = str(tmp_path / 'pwned')

    class Crafted:

        def __reduce__(self):
            if target == 'ndarray_tofile':
                return getattr, (np.zeros(1), 'tofile')
            if target == 'class_method':
                return getattr, (np.ndarray, 'tofile')
            return getattr, (HistoryBuffer, '__init__')

    path = str(tmp_path / 'crafted.pth')
    torch.save(dict(x=Crafted(), marker=marker), path)
    with pytest.raises(UnsafeCheckpointError, match='crafted.pth'):
        safe_load_checkpoint(path)
    assert not osp.exists(marker)


@pytest.mark.parametrize('kind', ['truncated', 'tail_cut', 'empty', 'text', 'legacy_truncated'])
def test_broken_file_is_corrupt_not_unsafe(tmp_path, kind):
    """Item 3: a truncated or non-checkpoint file is a CorruptCheckpointError that names it and never points at
    the code-executing sanitize tool."""
    good = str(tmp_path / 'good.pth')
    write_good(good)
    data = open(good, 'rb').read()
    path = str(tmp_path / f'{kind}.pth')
    if kind == 'truncated':
        content = data[:len(data) // 2]
    elif kind == 'tail_cut':
        content = data[:-10]
    elif kind == 'empty':
        content = b''
    elif kind == 'text':
        content = b'this is not a checkpoint\n'
    else:
        legacy = io.BytesIO()
        torch.save(dict(w=torch.ones(3)), legacy, _use_new_zipfile_serialization=False)
        content = legacy.getvalue()[:40]
    with open(path, 'wb') as f:
        f.write(content)
    with pytest.raises(CorruptCheckpointError, match=f'{kind}.pth') as err:
        safe_load_checkpoint(path)
    assert not isinstance(err.value, UnsafeCheckpointError)
    assert 'sanitize' not in str(err.value) and 'again' in str(err.value)
    if kind == 'empty':
        assert 'empty' in str(err.value)


def test_unsafe_file_names_the_trusted_only_way_out(tmp_path):
    """Item 3: only a file that really needs code is UnsafeCheckpointError, and it says the tool is for
    trusted files only."""
    path = str(tmp_path / 'evil.pth')
    write_evil(path, str(tmp_path / 'pwned'))
    with pytest.raises(UnsafeCheckpointError, match='evil.pth') as err:
        safe_load_checkpoint(path)
    assert not isinstance(err.value, CorruptCheckpointError)
    assert 'trust' in str(err.value)


def test_pickle_protocol_getattr_alias_is_bound():
    """The allow-list maps the name ``builtins.getattr`` to mmvlg's restricted function, never to the real
    built-in."""
    allowed = torch.serialization.get_safe_globals()
    entries = [g for g in allowed if isinstance(g, tuple) and g[1] == 'builtins.getattr']
    assert entries and all(g[0] is not getattr for g in entries)
    assert getattr not in allowed
    with pytest.raises(pickle.UnpicklingError):
        entries[0][0](os, 'system')


def test_inferencer_and_test_tool_refuse_code_over_http(tmp_path, hub_dir, http_root, monkeypatch):
    """Item 1 as the user hits it: ``GroundingInferencer(weights=URL)`` and ``tools/test.py CONFIG URL`` stop
    with UnsafeCheckpointError (``tools/test.py`` used to evaluate and exit 0 after running the payload)."""
    import importlib.util
    import sys

    from mmvlg.apis import GroundingInferencer
    from mmvlg.testing import tiny_mdetr_config, tiny_synthref
    from mmvlg.testing._utils import REPO_ROOT
    root, base = http_root
    marker = str(tmp_path / 'pwned')
    write_evil(osp.join(root, 'evil.pth'), marker)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'),
                dict(type='PackGroundingInputs')]
    cfg = dict(model=tiny_mdetr_config(), default_scope='mmvlg', visualizer=dict(type='GroundingVisualizer'),
               test_dataloader=dict(dataset=dict(pipeline=pipeline)))
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        GroundingInferencer(cfg, f'{base}/evil.pth', device='cpu')

    data_root = tiny_synthref(str(tmp_path / 'data'), num_scenes=1, image_size=64)
    config = str(tmp_path / 'cfg.py')
    with open(config, 'w') as f:
        f.write(f'''_base_ = ['{REPO_ROOT}/configs/mdetr/mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py']
test_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(datasets=[
    dict(type='SynthRefDataset', data_root='{data_root}', ann_file='annotations/finetune_synthref_val.json',
         data_prefix=dict(img='images/'), test_mode=True, pipeline={pipeline!r})]))
''')
    spec = importlib.util.spec_from_file_location('_mmvlg_test_tool', osp.join(REPO_ROOT, 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(sys, 'argv', ['test.py', config, f'{base}/evil.pth', '--work-dir', str(tmp_path / 'w')])
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        tool.main()
    assert not osp.exists(marker)
