"""Tests of mmvlg/apis/inferencer.py (GroundingInferencer) and mmvlg/visualization/attention.py."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from mmvlg.apis import GroundingInferencer, get_test_pipeline_cfg
from mmvlg.registry import INFERENCERS, MODELS
from mmvlg.testing import tiny_mdetr_config
from mmvlg.utils import register_all_modules
from mmvlg.visualization import attention_heatmap, draw_attention

TEST_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'),
                 dict(type='PackGroundingInputs')]
IMAGE_HW = (48, 64)


def write_tiny_files(root: str) -> dict:
    """A tiny MDETR* config (test pipeline inside a ConcatDataset, as in the real configs), a checkpoint of
    its random weights and a PNG image."""
    register_all_modules()
    model_cfg = tiny_mdetr_config(num_queries=8)
    config = osp.join(root, 'tiny_mdetr.py')
    with open(config, 'w') as f:
        f.write(f'model = {model_cfg!r}\n')
        f.write("test_dataloader = dict(dataset=dict(type='ConcatDataset', "
                f'datasets=[dict(pipeline={TEST_PIPELINE!r})]))\n')
        f.write("default_scope = 'mmvlg'\nvisualizer = dict(type='GroundingVisualizer')\n")
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    checkpoint = osp.join(root, 'tiny_mdetr.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    image = osp.join(root, 'scene.png')
    cv2.imwrite(image, np.random.default_rng(0).integers(0, 255, (*IMAGE_HW, 3), dtype=np.uint8))
    return dict(config=config, checkpoint=checkpoint, image=image, state_dict=model.state_dict())


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    return write_tiny_files(str(tmp_path_factory.mktemp('inferencer')))


@pytest.fixture(scope='module')
def inferencer(files):
    return GroundingInferencer(files['config'], files['checkpoint'], device='cpu')


def check_prediction(pred: dict, text: str, k: int) -> None:
    assert set(pred) == {'text', 'bboxes', 'scores'} and pred['text'] == text
    boxes, scores = np.array(pred['bboxes']), np.array(pred['scores'])
    assert boxes.shape == (k, 4) and scores.shape == (k,)
    assert np.all(np.diff(scores) <= 0) and np.all((scores >= 0) & (scores <= 1))
    h, w = IMAGE_HW
    assert np.all(boxes[:, 0] <= boxes[:, 2]) and np.all(boxes[:, 1] <= boxes[:, 3])
    assert np.all(boxes >= 0) and np.all(boxes[:, 0::2] <= w) and np.all(boxes[:, 1::2] <= h)


def test_weights_and_pipeline(files, inferencer):
    assert INFERENCERS.get('GroundingInferencer') is GroundingInferencer
    state = inferencer.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in files['state_dict'].items())
    # the ConcatDataset's first pipeline, with no annotation loading at inference
    assert [s['type'] for s in get_test_pipeline_cfg(inferencer.cfg)] == [s['type'] for s in TEST_PIPELINE]
    for compose in (inferencer.pipeline.from_file, inferencer.pipeline.from_ndarray):
        names = [type(t).__name__ for t in compose.transforms]
        assert 'LoadGroundingAnnotations' not in names and names[-1] == 'PackGroundingInputs'
    assert type(inferencer.pipeline.from_ndarray.transforms[0]).__name__ == 'LoadImageFromNDArray'
    packed = inferencer.pipeline(dict(img_path=files['image'], text='the red circle'))
    assert packed['data_samples'].text == 'the red circle' and 'ori_gt_bboxes' not in packed['data_samples']


def test_single_image_single_text(files, inferencer):
    out = inferencer(files['image'], 'the red circle left of the blue square')
    assert out['visualization'] is None
    assert len(out['predictions']) == 1 and len(out['predictions'][0]) == 1
    check_prediction(out['predictions'][0][0], 'the red circle left of the blue square', 1)
    json.dumps(out['predictions'])


def test_one_image_three_texts_and_topk(files, inferencer):
    texts = ['the red circle', 'the blue square', 'the largest green triangle']
    out = inferencer(files['image'], texts, topk=5, batch_size=2)
    assert len(out['predictions']) == 1
    for pred, text in zip(out['predictions'][0], texts):
        check_prediction(pred, text, 5)
    single = inferencer(files['image'], texts[1], topk=5)['predictions'][0][0]
    np.testing.assert_allclose(single['scores'], out['predictions'][0][1]['scores'], rtol=1e-4, atol=1e-5)
    everything = inferencer(files['image'], texts[0], topk=None)['predictions'][0][0]
    assert len(everything['scores']) == 8  # all queries
    strict = inferencer(files['image'], texts[0], topk=None, pred_score_thr=everything['scores'][2])
    assert len(strict['predictions'][0][0]['scores']) >= 3


def test_ndarray_inputs(files, inferencer):
    array = cv2.imread(files['image'])
    from_file = inferencer(files['image'], 'the red circle', topk=3)['predictions'][0][0]
    out = inferencer([array, files['image']], [['the red circle', 'the blue square'], 'the red circle'], topk=3)
    assert [len(g) for g in out['predictions']] == [2, 1]
    check_prediction(out['predictions'][0][0], 'the red circle', 3)
    for pred in (out['predictions'][0][0], out['predictions'][1][0]):
        np.testing.assert_allclose(pred['bboxes'], from_file['bboxes'], atol=1e-3)
    with pytest.raises(ValueError, match='2 images but 3 entries'):
        inferencer([array, files['image']], ['a', 'b', 'c'])
    with pytest.raises(ValueError, match='non-empty'):
        inferencer(array, ['a', ' '])


def test_return_vis_and_out_dir(files, inferencer, tmp_path):
    out = inferencer(files['image'], ['the red circle', 'the blue square'], return_vis=True,
                     out_dir=str(tmp_path / 'out'))
    drawings = out['visualization']
    assert len(drawings) == 1 and len(drawings[0]) == 2
    # the image (the visualizer may enlarge small images and add a text band) as RGB uint8
    h, w = IMAGE_HW
    assert all(d.ndim == 3 and d.shape[0] >= h and d.shape[1] >= w and d.dtype == np.uint8 for d in drawings[0])
    for j in range(2):
        written = cv2.imread(str(tmp_path / 'out' / 'vis' / f'scene_{j}.jpg'))
        assert written is not None and written.shape == drawings[0][j].shape
    with open(tmp_path / 'out' / 'preds' / 'scene.json') as f:
        assert json.load(f) == out['predictions'][0]


def test_attention_map_and_drawing(files, inferencer):
    att = inferencer.attention_map(files['image'], 'the red circle', layers=[0])
    assert att.shape == IMAGE_HW and att.dtype == np.float32 and np.isfinite(att).all() and att.min() >= 0
    heat = attention_heatmap(att[::4, ::4], size=IMAGE_HW)
    assert heat.shape == (*IMAGE_HW, 3) and heat.dtype == np.uint8
    drawing = draw_attention(cv2.imread(files['image']), att, bboxes=[[4, 4, 20, 30]], scores=[0.9],
                             text='the red circle', min_size=96)
    assert drawing.shape[1] == 2 * 96 + 2 and drawing.shape[0] > 72  # enlarged, side by side, title band


def test_directory_and_datasamples(files, inferencer, tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    image = cv2.imread(files['image'])
    for name in ('b.PNG', 'a.jpg'):
        cv2.imwrite(str(folder / name), image)
    (folder / 'notes.txt').write_text('not an image')
    out = inferencer(str(folder), ['the red circle', 'the blue square'], return_datasamples=True)
    assert [len(g) for g in out['predictions']] == [2, 2]  # two images, both expressions each
    sample = out['predictions'][0][1]
    assert osp.basename(sample.img_path) == 'a.jpg' and sample.text == 'the blue square'
    assert len(sample.pred_instances) == 1
