"""Tests of SampleVisualizationHook (mmvlg/engine/hooks/sample_visualization_hook.py)."""
import glob
import os.path as osp
from types import SimpleNamespace

import mmcv
import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmvlg.engine.hooks import SampleVisualizationHook
from mmvlg.visualization import GroundingVisualizer


def sample(img_path: str, img_id: int, split: str) -> DetDataSample:
    ds = DetDataSample()
    ds.set_metainfo(dict(img_path=img_path, img_id=img_id, split=split, text=f'expression {img_id}',
                         ori_shape=(32, 32), img_shape=(32, 32), ori_gt_bboxes=np.array([[2, 2, 20, 20.]])))
    ds.pred_instances = InstanceData(bboxes=torch.tensor([[1., 1., 18., 18.]]), scores=torch.tensor([0.9]),
                                     labels=torch.tensor([0]))
    return ds


def test_one_drawing_per_sample(tmp_path):
    # Two splits whose images share a file name, and two expressions on one image: four drawings.
    paths = []
    for split in ('val', 'testA'):
        paths.append(str(tmp_path / 'images' / split / '000000.png'))
        mmcv.imwrite(np.full((32, 32, 3), 128, np.uint8), paths[-1])
    GroundingVisualizer.get_instance('test_sample_visualization_hook')
    hook = SampleVisualizationHook(draw=True, test_out_dir='vis')
    runner = SimpleNamespace(work_dir=str(tmp_path / 'work'), timestamp='ts')
    outputs = [sample(paths[0], 0, 'val'), sample(paths[0], 1, 'val'), sample(paths[1], 0, 'testA'),
               sample(paths[1], 1, 'testA')]
    hook.after_test_iter(runner, 0, {}, outputs[:2])
    hook.after_test_iter(runner, 1, {}, outputs[2:])
    out_dir = osp.join(str(tmp_path / 'work'), 'ts', 'vis')
    files = sorted(osp.relpath(p, out_dir) for p in glob.glob(osp.join(out_dir, '*', '*.png')))
    assert files == ['testA/000000_0.png', 'testA/000000_1.png', 'val/000000_0.png', 'val/000000_1.png']
    drawn = mmcv.imread(osp.join(out_dir, 'val', '000000_1.png'))  # upscaled to 512 wide, text bands around
    assert drawn.shape[1] == 512 and drawn.shape[0] > 512
