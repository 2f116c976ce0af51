"""Tests of tools/analysis_tools/browse_dataset.py."""
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.structures import InstanceData
from PIL import Image

from mmvlg.datasets.transforms import replace_words_keep_spans
from mmvlg.testing import tiny_synthref

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'analysis_tools', 'browse_dataset.py')
CONFIG = osp.join(REPO, 'configs', '_base_', 'datasets', 'synthref.py')
FIBER = osp.join(REPO, 'configs', 'fiber')


def load_tool():
    spec = importlib.util.spec_from_file_location('browse_dataset', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_browse_train_with_flips(tmp_path):
    root = tiny_synthref(str(tmp_path / 'synthref'), num_scenes=2)
    out = tmp_path / 'vis'
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''), MPLBACKEND='Agg')
    proc = subprocess.run(
        [sys.executable, SCRIPT, CONFIG, '--output-dir', str(out), '--not-show', '--max-samples', '2',
         '--cfg-options', f'train_dataloader.dataset.data_root={root}', 'train_dataloader.dataset.generate=None',
         'train_dataloader.dataset.pipeline.2.prob=1.0'],
        capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted(os.listdir(out))
    assert len(files) == 2 and all(f.endswith('.jpg') for f in files)
    for f in files:
        with Image.open(out / f) as img:  # upscaled for drawing (512 wide), the expression in a band above
            assert img.size[0] == 512 and img.size[1] > 512
    with open(osp.join(root, 'annotations', 'finetune_synthref_train.json')) as f:
        captions = [im['caption'] for im in json.load(f)['images']]
    lines = [line for line in proc.stdout.splitlines() if line.startswith('[browse]')]
    assert len(lines) == 2
    for i, line in enumerate(lines):
        assert 'flip=True' in line
        text = re.search(r"text='([^']*)'", line).group(1)
        # the drawn expression is the flipped one
        assert text == replace_words_keep_spans(captions[i], [], {'left': 'right', 'right': 'left'})[0]


def packed_sample(flip: bool) -> DetDataSample:
    sample = DetDataSample(metainfo=dict(text='t', img_shape=(32, 64), ori_shape=(64, 128), scale_factor=(0.5, 0.5),
                                         flip=flip, ori_gt_bboxes=np.array([[10, 20, 30, 40]], np.float32)))
    sample.gt_instances = InstanceData(bboxes=HorizontalBoxes(torch.tensor([[59., 10., 64., 20.]])),
                                       labels=torch.zeros(1).long())
    return sample


def test_boxes_are_drawn_in_packed_image_coordinates():
    tool = load_tool()
    # train: the augmented boxes (gt_instances), not the original ones
    torch.testing.assert_close(tool.boxes_in_image(packed_sample(True), 'train'), torch.tensor([[59., 10., 64., 20.]]))
    # val/test: the metric's original boxes scaled to the resized image
    torch.testing.assert_close(tool.boxes_in_image(packed_sample(False), 'test'), torch.tensor([[5., 10., 15., 20.]]))
    drawable = tool.drawable_sample(packed_sample(True), 'train')
    assert 'ori_gt_bboxes' not in drawable.metainfo and drawable.text == 't'
    torch.testing.assert_close(drawable.gt_instances.bboxes, torch.tensor([[59., 10., 64., 20.]]))


def run_browse(tmp_path, config, phase, options):
    tmp_path.mkdir()
    out = tmp_path / 'vis'
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''), MPLBACKEND='Agg')
    proc = subprocess.run([sys.executable, SCRIPT, config, '--output-dir', str(out), '--not-show', '--max-samples',
                           '2', '--phase', phase, '--cfg-options', *options],
                          capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted(os.listdir(out))
    assert len(files) == 2
    lines = [line for line in proc.stdout.splitlines() if line.startswith('[browse]')]
    return [np.asarray(Image.open(out / f).convert('RGB')) for f in files], lines


def test_browse_caption_and_vqa_configs(tmp_path):
    """Issue 15, Tools item 4: caption and VQA samples (no boxes) are drawn with their text (and answers)."""
    vqa = osp.join(FIBER, 'fiber-vqa_swin-nano_roberta-tiny_1xb32-2k_synthref-vqa.py')
    ds = 'train_dataloader.dataset'
    images, lines = run_browse(tmp_path / 'vqa', vqa, 'train', [
        f'{ds}.data_root={tmp_path / "vqa_data"}', f'{ds}.generate.num_scenes.train=2',
        f'{ds}.generate.num_scenes.val=1', f'{ds}.generate.image_size=32'])
    assert all(' answers=[' in line and "text='" in line for line in lines)
    assert all(img.shape[1] == 512 and img.shape[0] > 512 for img in images)  # upscaled, text bands around
    captions = osp.join(FIBER, 'fiber-coarse_swin-nano_roberta-tiny_1xb16-3k_synthref-captions.py')
    ds = 'val_dataloader.dataset'
    images, lines = run_browse(tmp_path / 'captions', captions, 'val', [
        f'{ds}.data_root={tmp_path / "caption_data"}', f'{ds}.generate.num_scenes.train=2',
        f'{ds}.generate.num_scenes.val=1', f'{ds}.generate.image_size=32'])
    assert len(lines) == 2 and all('answers=' not in line for line in lines)
    assert all(img.shape[1] == 512 and img.shape[0] > 512 for img in images)


def test_caption_sample_has_no_boxes():
    tool = load_tool()
    sample = DetDataSample(metainfo=dict(text='a caption', img_shape=(32, 32)))
    sample.gt_instances = InstanceData()  # PackImageTextInputs: no boxes
    assert tool.boxes_in_image(sample, 'train').shape == (0, 4)
    assert len(tool.drawable_sample(sample, 'val').gt_instances) == 0


def test_browse_region_text_and_nlvr2(tmp_path):
    """Issue 16: X-VLM region-text samples list each box's text; NLVR2 pairs are drawn side by side."""
    regions = tmp_path / 'regions.py'
    regions.write_text(
        f"default_scope = 'mmvlg'\ntrain_dataloader = dict(dataset=dict(type='SynthRefRegionTextDataset', "
        f"data_root={str(tmp_path / 'srt')!r}, ann_file='annotations/regions_train.jsonl', "
        "data_prefix=dict(img='images/'), generate=dict(num_scenes=dict(train=2), image_size=32), pipeline=["
        "dict(type='LoadImageFromFile'), dict(type='RegionTextSampler', max_regions=3), "
        "dict(type='mmdet.Resize', scale=(32, 32), keep_ratio=False), dict(type='PackRegionTextInputs')]))\n")
    images, lines = run_browse(tmp_path / 'r', str(regions), 'train', ['train_dataloader.num_workers=0'])
    assert len(lines) == 2 and all(' regions=[' in line for line in lines)
    nlvr2 = tmp_path / 'nlvr2.py'
    nlvr2.write_text(
        f"default_scope = 'mmvlg'\ntrain_dataloader = dict(dataset=dict(type='SynthRefNLVR2Dataset', "
        f"data_root={str(tmp_path / 'nlvr2')!r}, ann_file='annotations/nlvr2_train.json', "
        "data_prefix=dict(img='images/'), generate=dict(num_pairs=dict(train=2), image_size=32), pipeline=["
        "dict(type='ApplyToImagePair', transforms=[dict(type='LoadImageFromFile'), "
        "dict(type='mmdet.Resize', scale=(32, 32), keep_ratio=False)]), dict(type='PackNLVR2Inputs')]))\n")
    images, lines = run_browse(tmp_path / 'n', str(nlvr2), 'train', ['train_dataloader.num_workers=0'])
    assert len(lines) == 2 and all('[label: ' in line for line in lines)
    assert all(img.shape[1] == 512 for img in images)  # the 64x32 pair, upscaled
