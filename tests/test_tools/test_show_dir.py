"""What ``tools/test.py --show-dir`` draws (issue 15, Tools item 2): the top-1 box whatever its score, small images
upscaled for drawing, the text in a band outside the image; one drawing per VQA question."""
import glob
import os.path as osp
from types import SimpleNamespace

import cv2
import mmcv
import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmvlg.engine.hooks import SampleVisualizationHook
from mmvlg.visualization import GroundingVisualizer
from mmvlg.visualization.grounding_visualizer import OTHER_COLOR, TOP1_COLOR


def scene(size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(60, 120, (size, size, 3), dtype=np.uint8)


def rec_sample(score: float) -> DetDataSample:
    ds = DetDataSample(metainfo=dict(text='the small purple triangle on the left of the big blue square',
                                     ori_shape=(64, 64)))
    ds.pred_instances = InstanceData(bboxes=torch.tensor([[8., 8., 24., 24.], [30., 30., 50., 50.]]),
                                     scores=torch.tensor([score, score / 2]), labels=torch.zeros(2).long())
    return ds


def pixels(drawn: np.ndarray, color) -> int:
    return int(np.all(drawn == np.array(color, np.uint8), axis=-1).sum())


def red_pixels(drawn: np.ndarray) -> int:
    return pixels(drawn, TOP1_COLOR)


def test_top1_is_drawn_below_the_score_threshold():
    vis = GroundingVisualizer.get_instance('test_show_dir_top1', topk=2)
    drawn = vis.draw_sample(scene(), rec_sample(0.05), draw_gt=False, pred_score_thr=0.3)
    # the top-1 box (x 8..24 of 64 px -> 64..192 of 512 px) is drawn in red, the second (also below 0.3) is not
    assert red_pixels(drawn) > 100 and pixels(drawn, OTHER_COLOR) == 0
    both = vis.draw_sample(scene(), rec_sample(0.9), draw_gt=False, pred_score_thr=0.3)
    assert red_pixels(both) > 100 and pixels(both, OTHER_COLOR) > 100


def test_small_images_are_upscaled_and_the_text_is_outside():
    vis = GroundingVisualizer.get_instance('test_show_dir_upscale')
    img = scene(64)
    caption = DetDataSample(metainfo=dict(text='a big yellow triangle, a big red triangle and a small white one'))
    drawn = vis.draw_sample(img, caption)
    assert drawn.shape[1] == 512 and drawn.shape[0] > 512
    band = drawn.shape[0] - 512  # the caption band above; nothing below (no prediction, no ground truth)
    up = cv2.resize(img, (512, 512), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(drawn[band:], up)  # the text covers none of the image
    assert drawn[:band].std() > 0  # and it is written in the band
    big = vis.draw_sample(scene(600), caption)
    assert big.shape[1] == 600  # not upscaled


def test_vqa_drawing_and_one_file_per_question(tmp_path):
    path = str(tmp_path / 'images' / 'val' / '000000.png')
    mmcv.imwrite(scene(32), path)
    GroundingVisualizer.get_instance('test_show_dir_vqa')
    hook = SampleVisualizationHook(draw=True, test_out_dir='vis')
    samples = []
    for qid, answer in ((7, 'red'), (8, 'two')):
        ds = DetDataSample(metainfo=dict(img_path=path, img_id=0, question_id=qid, split='val',
                                         text=f'question {qid}?', answers=[answer] * 10, pred_answer=answer,
                                         ori_shape=(32, 32)))
        ds.pred_answer_score = torch.tensor(0.7)
        samples.append(ds)
    hook.after_test_iter(SimpleNamespace(work_dir=str(tmp_path / 'work'), timestamp='ts'), 0, {}, samples)
    files = sorted(osp.basename(p) for p in glob.glob(str(tmp_path / 'work' / 'ts' / 'vis' / 'val' / '*.png')))
    assert files == ['000000_7.png', '000000_8.png']  # the questions of one image no longer overwrite each other
    drawn = mmcv.imread(str(tmp_path / 'work' / 'ts' / 'vis' / 'val' / '000000_7.png'))
    assert drawn.shape[1] == 512 and drawn.shape[0] > 512 + 40  # question above, answers below
