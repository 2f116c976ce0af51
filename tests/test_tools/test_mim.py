"""Issue 15, "mim and ``mmvlg::`` bases": mmvlg is packaged the OpenMMLab way (``mmvlg/.mim`` holds the configs,
tools, demo and model index), so that ``_base_ = 'mmvlg::...'`` and ``mim train mmvlg CONFIG`` work from outside
the repository.

- The editable install (``pip install -e .``, what ``tools/setup_env.sh`` runs) links ``mmvlg/.mim/*`` to the
  repository's folders, and a config outside the repository inherits ``mmvlg::mdetr/...py``.
- A wheel carries copies; ``mim train mmvlg`` of an outside config trains 2 iterations with the wheel's
  ``.mim/tools/train.py`` and ``mim test mmvlg`` evaluates the checkpoint (skipped without openmim).
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest

from mmvlg.testing import tiny_synthref
from mmvlg.testing._utils import REPO_ROOT

BASE = 'mmvlg::mdetr/mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py'
MIM_FILES = ('configs', 'tools', 'demo', 'model-index.yml')

OUTSIDE_CONFIG = """
_base_ = [{base!r}]
data_root = {data_root!r}
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, generate=None))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2, val_interval=1000)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                       dataset=dict(_delete_=True, type='SynthRefDataset', data_root=data_root,
                                    ann_file='annotations/finetune_synthref_val.json', data_prefix=dict(img='images/'),
                                    test_mode=True, pipeline=_base_.test_pipeline))
test_evaluator = dict(type='RefExpMetric', topk=(1, 5))
param_scheduler = []
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=2, save_best=None))
log_processor = dict(by_epoch=False)
"""


def test_editable_install_links_mim_folder():
    """``pip install -e .`` (setup.py's add_mim_extension under ``editable_wheel``) made ``mmvlg/.mim/*``
    relative links to the repository's folders."""
    import mmvlg
    from mmvlg.utils.mim import mim_root
    assert osp.samefile(osp.dirname(mmvlg.__file__), osp.join(REPO_ROOT, 'mmvlg')), 'mmvlg is not the editable one'
    for name in MIM_FILES:
        path = osp.join(mim_root(), name)
        assert osp.exists(path), f'{path} is missing: run `pip install --no-deps --no-build-isolation -e .`'
        if osp.islink(path):
            assert not osp.isabs(os.readlink(path))
        assert osp.samefile(path, osp.join(REPO_ROOT, name))


def test_mmvlg_base_resolves_outside_repository(tmp_path, monkeypatch):
    """A config outside the repository with ``_base_ = ['mmvlg::mdetr/...py']`` is read with the repository's
    file (MMEngine accepts only its own packages before ``import mmvlg`` registers mmvlg)."""
    from mmengine.config import Config

    import mmvlg  # noqa: F401  (registers mmvlg:: with MMEngine)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'outside.py'
    path.write_text(f'_base_ = [{BASE!r}]\ntrain_cfg = dict(max_epochs=1)\n')
    cfg = Config.fromfile(str(path))
    reference = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'mdetr', BASE.split('/')[-1]))
    assert cfg.train_cfg.max_epochs == 1
    assert cfg.model.type == 'MDETR' and cfg.model.neck == reference.model.neck
    assert cfg.default_scope == 'mmvlg'


def _build_wheel(tmp_path) -> str:
    """A wheel of the working tree (built from a copy, so the repository's .mim links stay links)."""
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=REPO_ROOT, capture_output=True,
                           text=True, check=True).stdout.split('\n')
    src = tmp_path / 'src'
    for name in files:
        if name and not name.startswith('tests/') and osp.isfile(osp.join(REPO_ROOT, name)):
            os.makedirs(osp.dirname(src / name), exist_ok=True)
            shutil.copy2(osp.join(REPO_ROOT, name), src / name)
    proc = subprocess.run([sys.executable, 'setup.py', '-q', 'bdist_wheel', '-d', str(tmp_path / 'dist')],
                          cwd=str(src), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheels = os.listdir(tmp_path / 'dist')
    assert len(wheels) == 1, wheels
    return str(tmp_path / 'dist' / wheels[0])


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    return _build_wheel(tmp_path_factory.mktemp('wheel'))


def test_wheel_carries_mim_copies(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ('mmvlg/.mim/model-index.yml', 'mmvlg/.mim/tools/train.py', 'mmvlg/.mim/tools/test.py',
                 'mmvlg/.mim/configs/mdetr/metafile.yml', 'mmvlg/.mim/configs/' + BASE.split('::')[1],
                 'mmvlg/.mim/configs/_base_/default_runtime.py', 'mmvlg/.mim/demo/image_demo.py',
                 'mmvlg/models/language_models/vocabs/synthref.txt'):
        assert name in names, f'{name} is not in the wheel'


def test_mim_train_outside_repository(wheel, tmp_path):
    """``mim train mmvlg outside.py`` from a folder outside the repository, mmvlg installed from its wheel:
    mim runs the package's ``.mim/tools/train.py``, whose config inherits ``mmvlg::``; 2 iterations."""
    mim = shutil.which('mim')
    if mim is None:
        pytest.skip('openmim is not installed (pip install openmim)')
    target = tmp_path / 'site'
    proc = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', '--target',
                           str(target), wheel], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data_root = tiny_synthref(str(tmp_path / 'synthref'), num_scenes=4, image_size=64)
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    (run_dir / 'outside.py').write_text(OUTSIDE_CONFIG.format(base=BASE, data_root=data_root))
    env = dict(os.environ, PYTHONPATH=str(target), CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run([mim, 'train', 'mmvlg', 'outside.py', '--work-dir', 'work', '--cfg-options',
                           'model.encoder.num_layers=1', 'model.decoder.num_layers=1'],
                          cwd=str(run_dir), env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert str(target / 'mmvlg' / '.mim' / 'tools' / 'train.py') in log, log[-3000:]
    assert osp.isfile(run_dir / 'work' / 'iter_2.pth'), os.listdir(run_dir / 'work')
    proc = subprocess.run([mim, 'test', 'mmvlg', 'outside.py', '--checkpoint', 'work/iter_2.pth', '--work-dir', 'test',
                           '--cfg-options', 'model.encoder.num_layers=1', 'model.decoder.num_layers=1'],
                          cwd=str(run_dir), env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert 'refexp/Prec@1' in log, log[-3000:]
