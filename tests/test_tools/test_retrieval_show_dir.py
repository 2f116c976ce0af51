"""``tools/test.py --show-dir`` on a retrieval config draws the retrieved results (issue 15, Inference item 5): one
drawing per gallery image with its top-k captions marked correct/incorrect, and one per caption with its top-k
images (mmvlg/visualization/retrieval.py, called by RetrievalTestLoop when the visualization hook has a
test_out_dir)."""
import glob
import importlib.util
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules
from mmvlg.visualization.retrieval import draw_image_retrieval, draw_text_retrieval

RETRIEVAL = osp.join(REPO_ROOT, 'configs', 'fiber', 'fiber-coarse_swin-nano_roberta-tiny_1xb16-3k_synthref-captions.py')


def test_drawings_mark_correct_results():
    image = np.full((32, 32, 3), 90, np.uint8)
    drawing = draw_text_retrieval(image, ['a red circle', 'a blue square'], [0.9, 0.2], [False, True], title='image 0')
    assert drawing.shape[0] >= 256 and drawing.shape[1] > 256 + 400  # enlarged image + text panel
    green = (np.abs(drawing.astype(int) - (60, 180, 60)).sum(-1) < 60).sum()
    red = (np.abs(drawing.astype(int) - (40, 40, 220)).sum(-1) < 60).sum()
    assert green > 0 and red > 0
    row = draw_image_retrieval('a red circle', [image, image], [0.5, 0.4], [True, False])
    assert row.shape[1] >= 2 * 160


@pytest.mark.filterwarnings('ignore')
def test_show_dir_on_retrieval_config(tmp_path, monkeypatch):
    register_all_modules()
    cfg = Config.fromfile(RETRIEVAL)
    checkpoint = str(tmp_path / 'random.pth')
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict(), meta=dict()), checkpoint)
    ds = 'test_dataloader.dataset.generate'
    options = [f'test_dataloader.dataset.data_root={tmp_path / "data"}', f'{ds}.num_scenes.train=2',
               f'{ds}.num_scenes.val=3', f'{ds}.image_size=32', 'test_dataloader.batch_size=4',
               'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
               'experiment_name=show_retrieval', 'visualizer.name=vis_show_retrieval']
    spec = importlib.util.spec_from_file_location('_mmvlg_tools_test_show', osp.join(REPO_ROOT, 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr(sys, 'argv', ['test.py', RETRIEVAL, checkpoint, '--work-dir', str(tmp_path / 'work'),
                                      '--show-dir', 'vis', '--cfg-options', *options])
    tool.main()
    text = sorted(glob.glob(str(tmp_path / 'work' / '*' / 'vis' / 'text_retrieval' / '*.jpg')))
    images = sorted(glob.glob(str(tmp_path / 'work' / '*' / 'vis' / 'image_retrieval' / '*.jpg')))
    assert len(text) == 3 and len(images) == 9  # 3 gallery images, 3 captions each
    for path in text + images:
        drawing = cv2.imread(path)
        assert drawing is not None and drawing.shape[0] >= 100 and drawing.shape[1] >= 300
