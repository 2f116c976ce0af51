"""Issue 15, "MMDetection interoperability": checkpoints written without mmvlg load in a process that imports
it (and code-executing ones stay refused), and mmvlg parts work inside MMDetection-scope configs as the README's
"Use mmvlg parts in an MMDetection config" shows."""
import os
import os.path as osp
import re
import subprocess
import sys
import textwrap

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# A plain MMEngine Runner (what mmdet's tools/train.py builds): a toy model and data set, 2 iterations, one
# checkpoint with the message hub's HistoryBuffers and numpy scalars. Run in a process that never imports mmvlg.
PLAIN_RUNNER = textwrap.dedent('''
    import sys
    import torch
    from torch import nn
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class ToyModel(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 1)

        def forward(self, inputs, labels=None, mode='tensor'):
            out = self.linear(inputs)
            return dict(loss=((out.squeeze(1) - labels) ** 2).mean()) if mode == 'loss' else out

    def make_runner(work_dir, **kwargs):
        data = [dict(inputs=torch.full((2, ), float(i)), labels=torch.tensor(float(i))) for i in range(4)]
        return Runner(model=ToyModel(), work_dir=work_dir,
                      train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
                                            batch_size=2, collate_fn=dict(type='default_collate')),
                      optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
                      train_cfg=dict(by_epoch=False, max_iters=2),
                      default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                                         logger=dict(type='LoggerHook', interval=1)),
                      default_scope='mmengine', **kwargs)

    if __name__ == '__main__':
        make_runner(sys.argv[1]).train()
        assert 'mmvlg' not in sys.modules, 'the plain runner imported mmvlg'
''')


@pytest.fixture
def plain_checkpoint(tmp_path):
    script = tmp_path / 'plain_runner.py'
    script.write_text(PLAIN_RUNNER)
    work_dir = tmp_path / 'plain'
    proc = subprocess.run([sys.executable, str(script), str(work_dir)], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = work_dir / 'iter_2.pth'
    assert path.is_file(), os.listdir(work_dir)
    return str(script), str(path)


def _toy_runner(script: str, work_dir: str, **kwargs):
    namespace = dict(__name__='plain_runner')
    exec(compile(open(script).read(), script, 'exec'), namespace)
    return namespace['make_runner'](work_dir, **kwargs)


def test_plain_runner_checkpoint_loads_and_resumes_in_mmvlg_process(plain_checkpoint, tmp_path):
    """A checkpoint of a plain MMEngine Runner in a process without mmvlg loads with ``Runner.load_checkpoint``
    (``tools/test.py``'s path), ``load_from`` and ``resume`` in a process that imports mmvlg; the message hub's
    HistoryBuffers come back."""
    import mmvlg  # noqa: F401  (installs the weights-only loaders)
    script, path = plain_checkpoint
    runner = _toy_runner(script, str(tmp_path / 'test'))
    checkpoint = runner.load_checkpoint(path)
    assert checkpoint['meta']['iter'] == 2
    reference = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
    for name, value in runner.model.state_dict().items():
        torch.testing.assert_close(value, reference[name])
    runner = _toy_runner(script, str(tmp_path / 'resume'), resume=True, load_from=path)
    runner._train_loop = runner.build_train_loop(runner._train_loop)  # what runner.train() does before loading
    runner.load_or_resume()
    assert runner.iter == 2
    assert len(runner.message_hub.get_scalar('train/loss').data[0]) >= 1


def test_crafted_plain_runner_checkpoint_is_still_refused(plain_checkpoint, tmp_path):
    """The same checkpoint with a code-executing object added is refused (the command never runs)."""
    import mmvlg  # noqa: F401
    from mmvlg.utils.checkpoint import UnsafeCheckpointError
    script, path = plain_checkpoint
    marker = str(tmp_path / 'pwned')
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    checkpoint['meta']['payload'] = _Evil(marker)
    crafted = str(tmp_path / 'crafted.pth')
    torch.save(checkpoint, crafted)
    runner = _toy_runner(script, str(tmp_path / 'test'))
    with pytest.raises(UnsafeCheckpointError, match='crafted.pth'):
        runner.load_checkpoint(crafted)
    assert not osp.exists(marker)


class _Evil:

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def readme_block(heading: str) -> str:
    """The first ```python block of README.md after ``heading``."""
    text = open(osp.join(REPO_ROOT, 'README.md')).read()
    start = text.index(heading)
    match = re.search(r'```python\n(.*?)```', text[start:], re.S)
    assert match, f'no python block after {heading!r} in README.md'
    return match.group(1)


def test_readme_mmdet_config_builds_and_computes_a_loss(tmp_path):
    """README's "Use mmvlg parts in an MMDetection config": an mmdet-scope config (``default_scope='mmdet'``,
    ``custom_imports``) with ``type='mmvlg.MDETR'`` and an ``mmvlg.SynthRefDataset`` whose children (neck,
    text encoder, transforms) carry no prefix and no ``_scope_``. Before the fix: ``KeyError:
    'LowLevelFusionNeck is not in the mmdet::model registry'``."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS, METRICS, MODELS, DefaultScope, init_default_scope
    from mmengine.utils import import_modules_from_strings

    from mmvlg.testing import tiny_synthref
    path = tmp_path / 'mdetr_in_mmdet.py'
    path.write_text(readme_block('## Use mmvlg parts in an MMDetection config'))
    data_root = tiny_synthref(str(tmp_path / 'synthref'), num_scenes=4)
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmdet' and cfg.model.type == 'mmvlg.MDETR'
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = data_root
    dataset_cfg.generate = None  # the tiny set instead of SynthRef's full size
    dataset = DATASETS.build(dataset_cfg)
    model = MODELS.build(cfg.model)
    METRICS.build(cfg.val_evaluator)
    assert DefaultScope.get_current_instance().scope_name == 'mmdet'  # the switch did not outlive the build
    batch = model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), True)
    losses = model(**batch, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()


def test_mmvlg_fiber_in_mmdet_scope():
    """The same for FIBER (a Swin from mmdet, mmvlg's fusion backbone and head) built in mmdet's scope."""
    from mmengine.registry import MODELS, init_default_scope

    from mmvlg.testing import demo_grounding_batch
    from mmvlg.testing.fiber import tiny_fiber_config
    init_default_scope('mmdet')
    cfg = tiny_fiber_config()
    cfg['type'] = 'mmvlg.FIBER'
    model = MODELS.build(cfg)
    losses = model(**model.data_preprocessor(demo_grounding_batch(), True), mode='loss')
    assert all(torch.isfinite(v) for k, v in losses.items() if 'loss' in k)


def test_scoped_construction_keeps_signatures_and_foreign_classes():
    """The mmvlg-scope ``__init__`` keeps each class's signature (MMEngine and ``config_check`` inspect it) and
    leaves a class of another package registered into an mmvlg registry unchanged."""
    import inspect

    from mmdet.models.necks import FPN
    from mmengine.registry import DefaultScope

    from mmvlg.models.necks import LowLevelFusionNeck
    from mmvlg.registry import MMVLGRegistry
    assert 'with_fusion' in inspect.signature(LowLevelFusionNeck).parameters
    registry = MMVLGRegistry('probe')
    init = FPN.__init__
    registry.register_module(module=FPN)
    assert FPN.__init__ is init
    with DefaultScope.overwrite_default_scope('mmdet'):
        neck = LowLevelFusionNeck(in_channels=(8, 16), out_channels=8)
        assert DefaultScope.get_current_instance().scope_name == 'mmdet'
    assert neck.input_proj.out_channels == 8
