"""Tests of the grounding transforms (mmvlg/datasets/transforms/)."""
import copy

import numpy as np
import pytest
import torch
from mmdet.structures.bbox import HorizontalBoxes

from mmvlg.datasets.transforms import (
    GroundingRandomFlip,
    PackGroundingInputs,
    RandomCropKeepBoxes,
    replace_words_keep_spans,
)
from mmvlg.registry import DATASETS
from mmvlg.testing import get_config, tiny_synthref
from mmvlg.utils import register_all_modules

register_all_modules()
LR = {'left': 'right', 'right': 'left'}


def words(text, spans):
    return [[text[s:e] for s, e in inst] for inst in spans]


# ------------------------------------------------------------------------------------ replace_words_keep_spans


def test_replace_swaps_left_and_right_at_once():
    text, spans = replace_words_keep_spans('the circle left of the square right of it', [], LR)
    assert text == 'the circle right of the square left of it' and spans == []


def test_replace_moves_spans():
    text = 'the leftmost circle right of the big square'
    spans = [[[0, 19]], [[20, 25], [33, 43]]]  # "the leftmost circle"; "right", "big square"
    new_text, new_spans = replace_words_keep_spans(text, spans, LR)
    assert new_text == 'the rightmost circle left of the big square'
    assert words(new_text, new_spans) == [['the rightmost circle'], ['left', 'big square']]
    assert new_spans == [[[0, 20]], [[21, 25], [33, 43]]]


def test_replace_span_boundary_inside_a_word():
    # a span ending inside "leftmost" ends inside "rightmost" at the end of the replaced part
    new_text, new_spans = replace_words_keep_spans('leftmost one', [[[0, 2]], [[6, 12]]], LR)
    assert new_text == 'rightmost one'
    assert new_spans == [[[0, 5]], [[7, 13]]]


def test_replace_is_case_sensitive_and_noop_without_mapping():
    assert replace_words_keep_spans('Left of it', [[[0, 4]]], LR) == ('Left of it', [[[0, 4]]])
    assert replace_words_keep_spans('left', [[[0, 4]]], {}) == ('left', [[[0, 4]]])


# ------------------------------------------------------------------------------------------- GroundingRandomFlip


def flip_results():
    text = 'the red circle left of the square'
    return dict(img=np.arange(2 * 10 * 3, dtype=np.uint8).reshape(2, 10, 3), img_shape=(2, 10), text=text,
                gt_bboxes=HorizontalBoxes(torch.tensor([[1., 0., 4., 2.], [6., 0., 10., 1.]])),
                gt_bboxes_labels=np.zeros(2, np.int64), gt_ignore_flags=np.zeros(2, bool),
                gt_tokens_positive=[[[0, 14]], [[15, 19], [23, 33]]])


def test_flip_swaps_text_boxes_and_spans():
    results = GroundingRandomFlip(prob=1.0)(flip_results())
    assert results['flip'] and results['flip_direction'] == 'horizontal'
    assert results['text'] == 'the red circle right of the square'
    assert words(results['text'], results['gt_tokens_positive']) == [['the red circle'], ['right', 'the square']]
    np.testing.assert_allclose(results['gt_bboxes'].tensor.numpy(), [[6, 0, 9, 2], [0, 0, 4, 1]])
    np.testing.assert_array_equal(results['img'], flip_results()['img'][:, ::-1])


def test_flip_prob_zero_and_vertical_refused():
    results = GroundingRandomFlip(prob=0.0)(flip_results())
    assert not results['flip'] and results['text'] == flip_results()['text']
    with pytest.raises(ValueError, match='horizontal'):
        GroundingRandomFlip(prob=1.0, direction='vertical')


# ------------------------------------------------------------------------------------------- RandomCropKeepBoxes


def test_random_crop_keeps_every_box_inside():
    rng = np.random.default_rng(0)
    np.random.seed(0)
    crop = RandomCropKeepBoxes(min_ratio=0.3, prob=1.0)
    num_cropped = 0
    for _ in range(300):
        h, w = rng.integers(20, 80, size=2)
        n = int(rng.integers(1, 4))
        x1, y1 = rng.uniform(0, w - 2, size=n), rng.uniform(0, h - 2, size=n)
        x2, y2 = rng.uniform(x1 + 1, w), rng.uniform(y1 + 1, h)
        boxes = np.stack([x1, y1, x2, y2], 1).astype(np.float32)
        results = crop(dict(img=np.zeros((h, w, 3), np.uint8), img_shape=(h, w),
                            gt_bboxes=HorizontalBoxes(torch.from_numpy(boxes.copy()))))
        ch, cw = results['img'].shape[:2]
        assert results['img_shape'] == (ch, cw)
        out = results['gt_bboxes'].tensor.numpy()
        # not clipped (same sizes) and fully inside the window
        np.testing.assert_allclose(out[:, 2:] - out[:, :2], boxes[:, 2:] - boxes[:, :2], atol=1e-4)
        assert (out[:, :2] >= -1e-4).all() and (out[:, 2] <= cw + 1e-4).all() and (out[:, 3] <= ch + 1e-4).all()
        num_cropped += (ch, cw) != (h, w)
    assert num_cropped > 100  # it does crop


def test_random_crop_without_boxes_and_prob_zero():
    np.random.seed(1)
    results = RandomCropKeepBoxes(min_ratio=0.5, prob=1.0)(
        dict(img=np.zeros((40, 30, 3), np.uint8), img_shape=(40, 30), gt_bboxes=HorizontalBoxes(torch.zeros(0, 4))))
    assert 20 <= results['img'].shape[0] <= 40 and 15 <= results['img'].shape[1] <= 30
    untouched = RandomCropKeepBoxes(prob=0.0)(dict(img=np.zeros((4, 4, 3)), gt_bboxes=None))
    assert untouched['img'].shape == (4, 4, 3)
    with pytest.raises(ValueError):
        RandomCropKeepBoxes(min_ratio=0)


# ------------------------------------------------------------------------------------------- PackGroundingInputs


def test_pack_puts_grounding_keys_in_metainfo():
    results = flip_results()
    results.update(img_id=3, img_path='x.png', ori_shape=(2, 10), scale_factor=(1., 1.), split='s',
                   ori_gt_bboxes=np.array([[1, 0, 4, 2], [6, 0, 10, 1]], np.float32))
    results['gt_ignore_flags'] = np.array([False, True])
    packed = PackGroundingInputs()(copy.deepcopy(results))
    ds = packed['data_samples']
    assert packed['inputs'].shape == (3, 2, 10)
    assert ds.text == results['text'] and ds.split == 's'
    assert ds.tokens_positive == [[[0, 14]]]  # aligned with the kept (non-ignored) boxes
    assert len(ds.gt_instances) == 1 and len(ds.ignored_instances) == 1
    np.testing.assert_array_equal(ds.ori_gt_bboxes, results['ori_gt_bboxes'])


# ------------------------------------------------------------------------------- whole pipelines from the configs


@pytest.fixture(scope='module')
def synthref_root(tmp_path_factory):
    return tiny_synthref(str(tmp_path_factory.mktemp('sr') / 'sr'), num_scenes=4)


def build_from_config(config: str, loader: str, root: str, pipeline_edit=None, **overrides):
    cfg = get_config(config)
    ds_cfg = copy.deepcopy(cfg[loader].dataset)
    ds_cfg.update(dict(data_root=root, ann_file='annotations/finetune_synthref_train.json',
                       data_prefix=dict(img='images/')), **overrides)
    ds_cfg.pop('generate', None)
    if pipeline_edit:
        pipeline_edit(ds_cfg.pipeline)
    return DATASETS.build(ds_cfg)


def test_synthref_train_pipeline(synthref_root):
    def always_flip(pipeline):
        pipeline[[t['type'] for t in pipeline].index('GroundingRandomFlip')]['prob'] = 1.0

    ds = build_from_config('_base_/datasets/synthref.py', 'train_dataloader', synthref_root, always_flip)
    plain = build_from_config('_base_/datasets/synthref.py', 'train_dataloader', synthref_root)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        item = ds[i]
        sample = item['data_samples']
        assert item['inputs'].shape == (3, 64, 64) and item['inputs'].dtype == torch.uint8
        assert sample.flip
        expected, spans = replace_words_keep_spans(info['text'], [info['instances'][0]['tokens_positive']], LR)
        assert sample.text == expected and sample.tokens_positive == spans
        x1, y1, x2, y2 = info['instances'][0]['bbox']
        np.testing.assert_allclose(sample.gt_instances.bboxes.tensor.numpy(), [[64 - x2, y1, 64 - x1, y2]],
                                   atol=1e-4)
        np.testing.assert_allclose(sample.ori_gt_bboxes, [[x1, y1, x2, y2]], atol=1e-4)
        # the same sample without a flip: identical image mirrored
        ref = plain[i]
        if not ref['data_samples'].flip:
            torch.testing.assert_close(item['inputs'], ref['inputs'].flip(-1))


def test_refcoco_train_pipeline_with_crop(synthref_root):
    """RefCOCO's train pipeline (flip, RandomCropKeepBoxes, resize to 640) on SynthRef files."""
    def always_crop(pipeline):
        pipeline[[t['type'] for t in pipeline].index('RandomCropKeepBoxes')]['prob'] = 1.0

    np.random.seed(0)
    ds = build_from_config('_base_/datasets/refcoco.py', 'train_dataloader', synthref_root, always_crop)
    for i in range(min(len(ds), 4)):
        sample = ds[i]['data_samples']
        h, w = sample.img_shape
        assert max(h, w) == 640
        box = sample.gt_instances.bboxes.tensor[0]
        assert (box >= -1e-3).all() and box[2] <= w + 1e-3 and box[3] <= h + 1e-3
