"""Tests of demo/image_demo.py and demo/attention_demo.py (run as scripts on a tiny model)."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import torch

from mmvlg.registry import MODELS
from mmvlg.testing import tiny_mdetr_config
from mmvlg.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGE_DEMO = osp.join(REPO, 'demo', 'image_demo.py')
ATTENTION_DEMO = osp.join(REPO, 'demo', 'attention_demo.py')
TEST_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'),
                 dict(type='PackGroundingInputs')]


def write_tiny_files(root: str) -> dict:
    """A tiny MDETR* config with a test pipeline, a checkpoint of its random weights and a PNG image."""
    register_all_modules()
    model_cfg = tiny_mdetr_config(num_queries=4)
    config = osp.join(root, 'tiny_mdetr_demo.py')
    with open(config, 'w') as f:
        f.write(f'model = {model_cfg!r}\n')
        f.write(f'test_dataloader = dict(dataset=dict(pipeline={TEST_PIPELINE!r}))\n')
        f.write("default_scope = 'mmvlg'\nvisualizer = dict(type='GroundingVisualizer')\n")
    checkpoint = osp.join(root, 'tiny_mdetr_demo.pth')
    torch.save({'state_dict': MODELS.build(model_cfg).state_dict(), 'meta': {}}, checkpoint)
    image = osp.join(root, 'scene.png')
    cv2.imwrite(image, np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8))
    return dict(config=config, checkpoint=checkpoint, image=image)


def last_json_line(stdout: str):
    return json.loads(stdout.strip().splitlines()[-1])


def test_image_demo_argument_order():
    spec = importlib.util.spec_from_file_location('image_demo', IMAGE_DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.parse_args(['img.png', 'the red one', 'the blue one', 'cfg.py', 'w.pth', '--out-file', 'o.jpg',
                              '--topk', '2'])
    assert (args.image, args.texts, args.config, args.checkpoint) == ('img.png', ['the red one', 'the blue one'],
                                                                      'cfg.py', 'w.pth')
    assert args.out_file == 'o.jpg' and args.topk == 2


def test_demo_scripts(tmp_path):
    files = write_tiny_files(str(tmp_path))
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''), MPLBACKEND='Agg')
    image_out, att_out = tmp_path / 'out.jpg', tmp_path / 'vis' / 'att.jpg'
    commands = [
        [sys.executable, IMAGE_DEMO, files['image'], 'the red circle', files['config'], files['checkpoint'],
         '--out-file', str(image_out), '--device', 'cpu', '--topk', '2'],
        [sys.executable, ATTENTION_DEMO, files['image'], 'the red circle', files['config'], files['checkpoint'],
         '--out-file', str(att_out), '--layers', '0', '--device', 'cpu', '--min-size', '0'],
    ]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path),
                              env=env) for c in commands]  # both at once: most of the time is start-up
    outputs = [p.communicate(timeout=180) for p in procs]
    for proc, (_, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr[-3000:]

    preds = last_json_line(outputs[0][0])
    assert len(preds) == 1 and preds[0]['text'] == 'the red circle'
    assert np.array(preds[0]['bboxes']).shape == (2, 4) and preds[0]['scores'][0] >= preds[0]['scores'][1]
    drawn = cv2.imread(str(image_out))
    assert drawn is not None and drawn.shape[0] >= 40 and drawn.shape[1] >= 56  # (small images may be enlarged)

    att = last_json_line(outputs[1][0])
    assert att['text'] == 'the red circle' and att['layers'] == [0] and len(att['bbox']) == 4
    assert att['bbox'] == preds[0]['bboxes'][0]
    drawn = cv2.imread(str(att_out))
    assert drawn is not None and drawn.shape[1] > 2 * 56 and drawn.shape[0] > 40  # side by side + title


def readme_demo_commands():
    """Every ``python demo/...`` command of the bash blocks of README.md and configs/*/README.md, continuation
    lines joined, per README."""
    import glob
    import re
    import shlex
    found = {}
    for readme in [osp.join(REPO, 'README.md')] + sorted(glob.glob(osp.join(REPO, 'configs', '*', 'README.md'))):
        with open(readme) as f:
            blocks = re.findall(r'```bash\n(.*?)```', f.read(), flags=re.S)
        for block in blocks:
            for line in block.replace('\\\n', ' ').splitlines():
                line = line.split(' #')[0].strip()
                if line.startswith('python demo/'):
                    found.setdefault(osp.relpath(readme, REPO), []).append(shlex.split(line)[1:])
    return found


def load_script(path: str):
    spec = importlib.util.spec_from_file_location(osp.splitext(osp.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_demo_commands_run_as_written(tmp_path, monkeypatch):
    """Issue 15, Inference item 1: the demo commands of the README and the config READMEs run as printed, on the
    shipped demo image (demo/demo.png, < 100 KB, source and license in demo/README.md), with a checkpoint of
    random weights of the printed config at the printed checkpoint path (run in-process through each script's
    main(), from a folder that links the repository's demo/ and configs/)."""
    import warnings

    from mmengine.config import Config
    image = osp.join(REPO, 'demo', 'demo.png')
    assert osp.getsize(image) < 100 * 1024 and 'demo.png' in open(osp.join(REPO, 'demo', 'README.md')).read()
    commands = readme_demo_commands()
    assert 'README.md' in commands and len(commands['README.md']) >= 2
    assert {'demo/image_demo.py', 'demo/attention_demo.py'} <= {c[0] for cmds in commands.values() for c in cmds}
    register_all_modules()
    scripts = {}
    for k, (readme, cmds) in enumerate(sorted(commands.items())):
        cwd = tmp_path / f'readme{k}'
        cwd.mkdir()
        for name in ('demo', 'configs'):
            os.symlink(osp.join(REPO, name), cwd / name)
        monkeypatch.chdir(cwd)
        for argv in cmds:
            assert argv[1] == 'demo/demo.png', f'{readme}: {argv}'
            at = next(i for i, a in enumerate(argv) if a.startswith('configs/'))
            config, checkpoint = argv[at], argv[at + 1]  # IMAGE EXPRESSION... CONFIG CHECKPOINT [options]
            if not osp.exists(checkpoint):
                os.makedirs(osp.dirname(checkpoint), exist_ok=True)
                torch.save({'state_dict': MODELS.build(Config.fromfile(config).model).state_dict(), 'meta': {}},
                           checkpoint)
            module = scripts.setdefault(argv[0], load_script(osp.join(REPO, argv[0])))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                module.main(argv[1:])
            assert not [str(w.message) for w in caught if '[UNK]' in str(w.message)], argv  # SynthRef words only
            drawn = cv2.imread(str(cwd / argv[argv.index('--out-file') + 1]))
            assert drawn is not None and drawn.shape[0] >= 128, argv
