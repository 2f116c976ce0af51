"""Issue 13, items 2, 14 and 15: configs stored in checkpoints are never executed
(mmvlg/utils/safe_config.py), checkpoints that do not fit the model stop a test (mmvlg/utils/checkpoint_keys.py,
CheckpointKeysHook), and config typos stop a run before it starts (mmvlg/utils/config_check.py).

Everything is tiny: ``tiny_mdetr_config`` on a generated SynthRef of 2 scenes per split; the tools run
in-process (their ``main()`` with a patched ``sys.argv``).
"""
import glob
import importlib.util
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from mmvlg.registry import MODELS
from mmvlg.testing import tiny_mdetr_config, tiny_synthref
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules
from mmvlg.utils.checkpoint_keys import CheckpointKeysError
from mmvlg.utils.config_check import ConfigCheckError, check_cfg_options, check_config
from mmvlg.utils.safe_config import UnsafeConfigError, config_from_text

register_all_modules()

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'), dict(type='PackGroundingInputs')]


def load_tool(relpath: str):
    name = '_catalogue_' + relpath.replace('/', '_').replace('.py', '')
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO_ROOT, 'tools', relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(monkeypatch, relpath: str, args: list, stage: str) -> None:
    # MMEngine keys its message hub, logger and visualizer instances by name: one name per run.
    options = [f'experiment_name=cat_{stage}', f'visualizer.name=cat_vis_{stage}']
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr(sys, 'argv', [relpath, *args, '--cfg-options', *options])
    load_tool(relpath).main()


def _dataloader(root: str, split: str, test_mode: bool) -> dict:
    return dict(
        batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=not test_mode),
        dataset=dict(type='SynthRefDataset', data_root=root, ann_file=f'annotations/finetune_synthref_{split}.json',
                     data_prefix=dict(img='images/'), generate=None, test_mode=test_mode, pipeline=PIPELINE))


def tiny_config(data_root: str, model: dict = None, custom_hooks: list = None, **extra) -> dict:
    """A complete config (train and test) of the tiny MDETR* on the tiny SynthRef."""
    cfg = dict(
        default_scope='mmvlg', model=model or tiny_mdetr_config(),
        train_dataloader=_dataloader(data_root, 'train', False),
        train_cfg=dict(by_epoch=False, max_iters=2, val_interval=1000),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=custom_hooks if custom_hooks is not None else [dict(type='SafeCheckpointHook')],
        log_processor=dict(by_epoch=False), randomness=dict(seed=0),
        test_dataloader=_dataloader(data_root, 'val', True), test_cfg=dict(),
        test_evaluator=dict(type='RefExpMetric', topk=(1, )),
        env_cfg=dict(dist_cfg=dict(backend='gloo')), visualizer=dict(type='GroundingVisualizer'))
    cfg.update(extra)
    return cfg


def write_config(path: str, cfg: dict) -> str:
    with open(path, 'w') as f:
        for key, value in cfg.items():
            f.write(f'{key} = {value!r}\n')
    return path


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    return tiny_synthref(str(tmp_path_factory.mktemp('synthref') / 'data'), num_scenes=2, image_size=64)


# ---------------------------------------------------------------------------------------------------------
# Item 2: the config string stored in a checkpoint is never executed
# ---------------------------------------------------------------------------------------------------------
def malicious_cfg(marker) -> str:
    return f"model = dict(type='MDETR')\n_x = __import__('os').system('touch {marker}')\n"


def test_stored_config_round_trips():
    """Issue 13, item 2: a real config text (``pretty_text``, as MMEngine stores it in ``meta['cfg']``) is read
    back, without executing it, into the same config."""
    cfg = Config(dict(model=tiny_mdetr_config(aux_decoder=True), default_scope='mmvlg', load_from=None,
                      resume=False, scales=[(-1, 2.5), (3, -4e-05)], flags={1, 2}, odd_keys={'a b': 1, 2: 'two'},
                      nested=dict(a=[dict(b=(1, ), c=None, d=True), {'x-y': [()]}], e='x\ny'), lr=-1e-3, empty=set()))
    assert config_from_text(cfg.pretty_text).to_dict() == cfg.to_dict()
    real = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'mdetr',
                                    'mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py'))
    assert config_from_text(real.pretty_text).to_dict() == real.to_dict()


@pytest.mark.parametrize('text, found, line', [
    ("_x = __import__('os').system('touch M')", 'function call', 2),
    ('import os', 'import', 2),
    ("a = dict(b=os.system)", 'attribute access', 2),
    ('a = b', 'a name', 2),
    ('a = [i for i in range(3)]', 'list comprehension', 2),
    ('a = lambda: 0', 'lambda', 2),
    ("a = f'{b}'", 'f-string', 2),
    ('a = 1 + 2', 'operator', 2),
    ('a.b = 1', "assignment to 'a.b'", 2),
    ("_base_ = ['x.py']", '_base_', 2),
    ('a = dict(**b)', 'dict unpacking', 2),
    ("a = open('f')", 'function call', 2),
    ('a = (1,\n     getattr(b, "c"))', 'function call', 3),
    ('a = (', 'not a Python config', 2),
])
def test_stored_config_with_code_is_refused(text, found, line):
    """Issue 13, item 2: anything but literal data in a stored config is refused, naming what and where."""
    with pytest.raises(UnsafeConfigError) as err:
        config_from_text('model = dict(type="MDETR")\n' + text)
    message = str(err.value)
    assert found in message and f'line {line}' in message and 'config file' in message


def _evil_checkpoint(tmp_path, marker, where: str = 'meta') -> str:
    """A weights-only-clean checkpoint (plain tensors and strings) whose stored config runs a command."""
    model = MODELS.build(tiny_mdetr_config())
    checkpoint = dict(state_dict=model.state_dict(), meta=dict(epoch=1))
    if where == 'meta':
        checkpoint['meta']['cfg'] = malicious_cfg(marker)
    else:
        checkpoint['message_hub'] = dict(runtime_info=dict(cfg=malicious_cfg(marker)))
    path = str(tmp_path / 'evil_cfg.pth')
    torch.save(checkpoint, path)
    torch.load(path, weights_only=True)  # clean as far as the unpickler is concerned
    return path


def test_strip_aux_decoder_never_executes_the_stored_config(tmp_path, capsys):
    """Issue 13, item 2: tools/model_converters/strip_aux_decoder.py refuses a checkpoint whose meta['cfg'] is
    code (nothing written, the command never runs); with --config it stores that config instead."""
    marker = tmp_path / 'pwned'
    src, dst = _evil_checkpoint(tmp_path, marker), str(tmp_path / 'out.pth')
    tool = load_tool('model_converters/strip_aux_decoder.py')
    assert tool.main([src, dst]) == 1
    err = capsys.readouterr().err
    assert 'refused' in err and 'line 2' in err and '--config' in err
    assert not marker.exists() and not osp.exists(dst)
    # A config file given by the user replaces the stored one.
    config = write_config(str(tmp_path / 'single.py'), dict(model=tiny_mdetr_config(aux_decoder=True)))
    assert tool.main([src, dst, '--config', config]) == 0
    stored = torch.load(dst, weights_only=True)['meta']['cfg']
    assert config_from_text(stored).model.to_dict() == tiny_mdetr_config()
    assert not marker.exists()


@pytest.mark.parametrize('where', ['meta', 'message_hub'])
def test_inferencer_never_executes_the_stored_config(tmp_path, where):
    """Issue 13, item 2: GroundingInferencer(model=None, weights=...) reads the stored config as data: a
    checkpoint whose stored config is code is refused and the command never runs."""
    from mmvlg.apis import GroundingInferencer
    marker = tmp_path / 'pwned'
    with pytest.raises(UnsafeConfigError, match='config file'):
        GroundingInferencer(model=None, weights=_evil_checkpoint(tmp_path, marker, where), device='cpu')
    assert not marker.exists()


def test_inferencer_reads_a_literal_stored_config(tmp_path):
    """Issue 13, item 2: a checkpoint that stores a real (literal) config still works with model=None."""
    from mmvlg.apis import GroundingInferencer
    cfg = Config(dict(model=tiny_mdetr_config(), default_scope='mmvlg', visualizer=dict(type='GroundingVisualizer'),
                      test_dataloader=dict(dataset=dict(pipeline=PIPELINE))))
    model = MODELS.build(tiny_mdetr_config())
    path = str(tmp_path / 'good.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(cfg=cfg.pretty_text)), path)
    inferencer = GroundingInferencer(model=None, weights=path, device='cpu')
    assert inferencer.cfg.model.to_dict() == tiny_mdetr_config()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in inferencer.model.state_dict().items())


def test_resume_never_executes_a_stored_legacy_config(tmp_path, data_root, monkeypatch):
    """Issue 13, item 2 (the same hole in resume): MMEngine's Runner.resume runs ``meta['config']`` through
    Config.fromstring; CheckpointKeysHook (added by tools/train.py) refuses it unless it is literal data."""
    marker = tmp_path / 'pwned'
    model = MODELS.build(tiny_mdetr_config())
    evil = str(tmp_path / 'evil_resume.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=0, iter=0, config=malicious_cfg(marker))), evil)
    config = write_config(str(tmp_path / 'tiny.py'), tiny_config(data_root))
    with pytest.raises(UnsafeConfigError, match=r"evil_resume\.pth.*meta\['config'\]"):
        run_tool(monkeypatch, 'train.py', [config, '--work-dir', str(tmp_path / 'w'), '--resume', evil], 'resume')
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------------
# Item 14: a checkpoint that does not fit the model
# ---------------------------------------------------------------------------------------------------------
def _checkpoint(tmp_path, name: str, model_cfg: dict, drop: str = None) -> str:
    torch.manual_seed(1)
    state = MODELS.build(model_cfg).state_dict()
    if drop:
        state = {k: v for k, v in state.items() if not k.startswith(drop)}
    path = str(tmp_path / name)
    torch.save(dict(state_dict=state, meta=dict()), path)
    return path


def test_test_tool_refuses_a_checkpoint_of_another_architecture(tmp_path, data_root, monkeypatch):
    """Issue 13, item 14: tools/test.py with a checkpoint of another model is an error that names the file and
    lists the keys, instead of evaluating a mostly random model."""
    config = write_config(str(tmp_path / 'tiny.py'), tiny_config(data_root))
    other = _checkpoint(tmp_path, 'other.pth', tiny_mdetr_config(embed_dims=16, with_fusion=False))
    with pytest.raises(CheckpointKeysError) as err:
        run_tool(monkeypatch, 'test.py', [config, other, '--work-dir', str(tmp_path / 'w')], 'other_arch')
    message = str(err.value)
    assert 'other.pth' in message and 'shape mismatch' in message and 'allow_missing' in message
    assert 'more)' in message  # the first keys and a count


def test_test_tool_allow_list(tmp_path, data_root, monkeypatch):
    """Issue 13, item 14: a checkpoint without the box head is an error listing the head's keys; allowed by
    CheckpointKeysHook(allow_missing=...), the test runs."""
    head_less = _checkpoint(tmp_path, 'head_less.pth', tiny_mdetr_config(), drop='bbox_head.')
    config = write_config(str(tmp_path / 'tiny.py'), tiny_config(data_root))
    with pytest.raises(CheckpointKeysError, match=r'missing from the checkpoint.*bbox_head\.'):
        run_tool(monkeypatch, 'test.py', [config, head_less, '--work-dir', str(tmp_path / 'w1')], 'head_less')
    hooks = [dict(type='SafeCheckpointHook'), dict(type='CheckpointKeysHook', allow_missing=[r'^bbox_head\.'])]
    allowed = write_config(str(tmp_path / 'allowed.py'), tiny_config(data_root, custom_hooks=hooks))
    run_tool(monkeypatch, 'test.py', [allowed, head_less, '--work-dir', str(tmp_path / 'w2')], 'allowed')


def test_inferencer_refuses_a_checkpoint_of_another_architecture(tmp_path):
    """Issue 13, item 14: GroundingInferencer with weights of another model is an error listing the keys."""
    from mmvlg.apis import GroundingInferencer
    cfg = dict(model=tiny_mdetr_config(), default_scope='mmvlg', visualizer=dict(type='GroundingVisualizer'),
               test_dataloader=dict(dataset=dict(pipeline=PIPELINE)))
    other = _checkpoint(tmp_path, 'other.pth', tiny_mdetr_config(aux_decoder=True))
    with pytest.raises(CheckpointKeysError, match=r"other\.pth.*\n.*not in the model.*aux_"):
        GroundingInferencer(cfg, other, device='cpu')
    cfg['custom_hooks'] = [dict(type='CheckpointKeysHook', allow_unexpected=['^aux_'])]
    GroundingInferencer(cfg, other, device='cpu')


def _log_text(work_dir: str) -> str:
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert logs
    return ''.join(open(p).read() for p in logs)


def test_load_from_says_loudly_what_was_not_loaded(tmp_path, data_root, monkeypatch):
    """Issue 13, item 14: training from load_from with a partial checkpoint goes on with a WARNING that lists
    what was not loaded; a checkpoint that fills nothing is an error."""
    head_less = _checkpoint(tmp_path, 'head_less.pth', tiny_mdetr_config(), drop='bbox_head.')
    config = write_config(str(tmp_path / 'tiny.py'), tiny_config(data_root, train_cfg=dict(
        by_epoch=False, max_iters=1, val_interval=1000)))
    work_dir = str(tmp_path / 'w1')
    run_tool(monkeypatch, 'train.py', [config, '--work-dir', work_dir, '--cfg-options', f'load_from={head_less}'],
             'load_from')
    log = _log_text(work_dir)
    assert 'WARNING: load_from' in log and 'head_less.pth' in log and 'bbox_head.' in log
    nothing = str(tmp_path / 'nothing.pth')
    torch.save(dict(state_dict={'foo.weight': torch.zeros(2)}), nothing)
    with pytest.raises(CheckpointKeysError, match='fills none'):
        run_tool(monkeypatch, 'train.py', [config, '--work-dir', str(tmp_path / 'w2'), '--cfg-options',
                                           f'load_from={nothing}'], 'load_nothing')


# ---------------------------------------------------------------------------------------------------------
# Item 15: config typos stop the run before it starts
# ---------------------------------------------------------------------------------------------------------
def test_unknown_cfg_options_key_is_refused(tmp_path, data_root, monkeypatch):
    """Issue 13, item 15: --cfg-options train_cfgg.max_epochs=1 (a key neither in the config nor a runner
    argument) stops tools/train.py before training instead of being ignored."""
    config = write_config(str(tmp_path / 'tiny.py'), tiny_config(data_root))
    work_dir = str(tmp_path / 'w')
    with pytest.raises(ConfigCheckError, match=r"train_cfgg.max_iters.*did you mean 'train_cfg'"):
        run_tool(monkeypatch, 'train.py', [config, '--work-dir', work_dir, '--cfg-options', 'train_cfgg.max_iters=1'],
                 'typo_key')
    assert not glob.glob(osp.join(work_dir, '*.pth'))
    cfg = Config.fromfile(config)
    check_cfg_options(cfg, {'train_cfg.max_iters': 1, 'work_dir': 'x', 'load_from': 'y.pth'})  # fine


@pytest.mark.parametrize('option, key', [
    ('default_hooks.checkpoint.intervall=1', 'default_hooks.checkpoint.intervall'),
    ('default_hooks.logger.intervall=1', 'default_hooks.logger.intervall'),
    ('custom_hooks.0.priorty=1', 'custom_hooks[0].priorty'),
])
def test_misspelled_hook_argument_fails_before_training(tmp_path, data_root, monkeypatch, option, key):
    """Issue 13, item 15: a misspelled hook argument stops tools/train.py before training with an error naming
    the config key (CheckpointHook's used to fail only at the first checkpoint save)."""
    config = write_config(str(tmp_path / 'tiny.py'), tiny_config(data_root))
    work_dir = str(tmp_path / 'w')
    with pytest.raises(ConfigCheckError) as err:
        run_tool(monkeypatch, 'train.py', [config, '--work-dir', work_dir, '--cfg-options', option], 'typo_hook')
    assert key in str(err.value) and 'did you mean' in str(err.value)
    assert not glob.glob(osp.join(work_dir, '*.pth'))


def test_config_checks(tmp_path, data_root):
    """Issue 13, item 15: near misses of runner keys in a config, unregistered hooks and missing hook
    arguments are errors naming the key."""
    cfg = Config(tiny_config(data_root, custom_hook=[dict(type='SafeCheckpointHook')]))
    with pytest.raises(ConfigCheckError, match="'custom_hook'.*did you mean 'custom_hooks'"):
        check_config(cfg)
    cfg = Config(tiny_config(data_root, custom_hooks=[dict(type='SafeCheckpointHok')]))
    with pytest.raises(ConfigCheckError, match=r"custom_hooks\[0\]\.type.*'SafeCheckpointHook'"):
        check_config(cfg)
    cfg = Config(tiny_config(data_root, custom_hooks=[dict(type='EMAHook', momentumm=0.1)]))
    with pytest.raises(ConfigCheckError, match=r"custom_hooks\[0\]\.momentumm.*'momentum'"):
        check_config(cfg)
    check_config(Config(tiny_config(data_root)))


CONFIGS = sorted(osp.relpath(p, REPO_ROOT) for p in glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*.py'))
                 if '_base_' not in p)


def test_every_config_passes_the_checks():
    """Issue 13, item 15: the checks refuse no config of the repository."""
    assert len(CONFIGS) > 30
    for path in CONFIGS:
        cfg = Config.fromfile(osp.join(REPO_ROOT, path))
        check_config(cfg)
        check_cfg_options(cfg, {'train_cfg.max_epochs': 1, 'work_dir': 'w', 'load_from': 'x.pth',
                                'experiment_name': 'e', 'launcher': 'none'})
