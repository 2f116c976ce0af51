"""RegionTextDataset (X-VLM's region-text format), RegionTextSampler and PackRegionTextInputs."""
import json

import numpy as np
import pytest
import torch
from mmengine.dataset import ConcatDataset
from PIL import Image

from mmvlg.datasets import AnnotationError, CaptionDataset, RegionTextDataset
from mmvlg.datasets.transforms import PackRegionTextInputs, RegionTextSampler
from mmvlg.utils import register_all_modules

register_all_modules()

H, W = 40, 60


@pytest.fixture()
def root(tmp_path):
    (tmp_path / 'img').mkdir()
    for name in ('a.png', 'b.png'):
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / 'img' / name)
    return tmp_path


def write(root, name, entries, as_list=False):
    path = root / name
    path.write_text(json.dumps(entries) if as_list else '\n'.join(json.dumps(e) for e in entries) + '\n')
    return name


def build(root, entries, name='regions.jsonl', as_list=False, **kwargs):
    return RegionTextDataset(data_root=str(root), ann_file=write(root, name, entries, as_list),
                             data_prefix=dict(img='img/'), **kwargs)


ENTRIES = [
    dict(image='a.png', image_id=3, caption=['a scene', 'left of it'],
         elems=[dict(caption='circle', attributes=['red', 'big'], bb=[2, 3, 10, 8]),
                dict(caption=['the square'], bb=[30, 10, 20, 20])]),
    dict(image='b.png', elems=[dict(caption='a dot', bb=[0, 0, 60, 40])]),
]


@pytest.mark.parametrize('as_list', [False, True])
def test_load(root, as_list):
    ds = build(root, ENTRIES, name='r.json' if as_list else 'r.jsonl', as_list=as_list)
    assert len(ds) == 2
    info = ds.get_data_info(0)
    assert info['img_id'] == 3 and info['data_kind'] == 'region_text' and info['img_path'].endswith('img/a.png')
    assert info['captions'] == ['a scene', 'left of it'] and info['text'] == 'a scene'
    assert info['regions'][0] == dict(bbox=[2.0, 3.0, 12.0, 11.0], captions=['circle'], attributes=['red', 'big'])
    assert info['regions'][1]['captions'] == ['the square'] and info['regions'][1]['attributes'] == []
    info = ds.get_data_info(1)
    assert info['img_id'] == 'b.png' and info['captions'] == [] and info['text'] == ''


@pytest.mark.parametrize('elem,match', [
    (dict(caption='x', bb=[50, 10, 20, 10]), r'line 1 \(image 3\), elem 0 has a box .* outside the 60x40 image'),
    (dict(caption='x', bb=[-5, 0, 10, 10]), r'elem 0 has a box .* outside'),
    (dict(caption='x', bb=[5, 5, 0, 10]), r'line 1 \(image 3\), elem 0 has a box "bb" .* of zero area'),
    (dict(caption='  ', bb=[5, 5, 5, 5]), r'r\.jsonl, line 1 \(image 3\), elem 0 has an empty .*"caption"'),
    (dict(caption=[], bb=[5, 5, 5, 5]), r'elem 0 has an empty "caption" list'),
    (dict(caption='x', attributes=[''], bb=[5, 5, 5, 5]), r'elem 0 has an empty .*"attributes"'),
    (dict(bb=[5, 5, 5, 5]), r'elem 0 has no "caption"'),
    (dict(caption='x', bb=[5, 5, 'a', 5]), r'elem 0 has no "bbox" of 4 numbers'),
])
def test_bad_regions_name_file_and_id(root, elem, match):
    with pytest.raises(AnnotationError, match=match):
        build(root, [dict(image='a.png', image_id=3, elems=[elem])], name='r.jsonl')


def test_box_checked_with_entry_size_without_image_check(root):
    entry = dict(image='a.png', image_id=3, height=20, width=20, elems=[dict(caption='x', bb=[15, 0, 10, 10])])
    with pytest.raises(AnnotationError, match=r'outside the 20x20 image'):
        build(root, [entry], check_images=False)
    # within the tolerance: clipped
    entry = dict(image='a.png', image_id=3, elems=[dict(caption='x', bb=[50.5, 0, 10, 10])])
    assert build(root, [entry]).get_data_info(0)['regions'][0]['bbox'] == [50.5, 0.0, 60.0, 10.0]


def test_bad_entries(root):
    with pytest.raises(AnnotationError, match=r'line 1: expected an object with an "image" path'):
        build(root, [dict(elems=[])])
    with pytest.raises(AnnotationError, match=r'line 1 \(image 3\) has no valid region and no caption'):
        build(root, [dict(image='a.png', image_id=3, elems=[])])
    with pytest.raises(AnnotationError, match=r'line 1 \(image 3\) has an empty or non-string "caption"'):
        build(root, [dict(image='a.png', image_id=3, caption='', elems=[dict(caption='x', bb=[1, 1, 2, 2])])])
    with pytest.raises(FileNotFoundError, match=r'line 1 \(image 3\): image file .*c\.png'):
        build(root, [dict(image='c.png', image_id=3, elems=[dict(caption='x', bb=[1, 1, 2, 2])])])


def test_skip_invalid_counts(root):
    entries = [dict(image='a.png', image_id=3, elems=[dict(caption='x', bb=[1, 1, 2, 2]),
                                                      dict(caption='', bb=[1, 1, 2, 2]),
                                                      dict(caption='y', bb=[1, 1, 0, 2])]),
               dict(image='b.png', image_id=4, elems=[dict(caption='x', bb=[100, 1, 2, 2])]),
               dict(image='c.png', image_id=5, elems=[dict(caption='x', bb=[1, 1, 2, 2])])]
    with pytest.warns(UserWarning, match=r'skipped 5 invalid'):
        ds = build(root, entries, skip_invalid=True)
    assert len(ds) == 1 and ds.num_skipped == 5 and len(ds.get_data_info(0)['regions']) == 1


# ------------------------------------------------------------------------------------------------ sampler
def results_for(regions, captions=(), h=H, w=W):
    img = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    return dict(img=img, img_shape=(h, w), ori_shape=(h, w), img_id=1, captions=list(captions), regions=[
        dict(bbox=list(b), captions=[c], attributes=[]) for b, c in regions])


def test_crop_contains_the_chosen_element():
    regions = [([5, 6, 15, 20], 'a'), ([30, 2, 58, 38], 'b'), ([20, 20, 25, 30], 'c')]
    for seed in range(40):
        np.random.seed(seed)
        out = RegionTextSampler(max_regions=5, flip_prob=0)(results_for(regions))
        x0, y0, x1, y1 = out['region_crop']
        assert out['img'].shape[:2] == (y1 - y0, x1 - x0) == tuple(out['img_shape'])
        chosen = {t: b for (b, t) in regions}[out['region_texts'][0]]
        assert x0 <= chosen[0] and y0 <= chosen[1] and chosen[2] <= x1 and chosen[3] <= y1
        # the chosen element is kept first, unclipped (moved into the crop's pixels)
        np.testing.assert_allclose(out['gt_bboxes'].tensor[0].numpy(),
                                   [chosen[0] - x0, chosen[1] - y0, chosen[2] - x0, chosen[3] - y0])
        assert out['region_is_image'] == [False] * len(out['region_texts'])


def test_clipping_rule():
    sampler = RegionTextSampler(max_regions=5, flip_prob=0)
    # the crop is forced to x in [0, 20] (the chosen box is [0, 0, 20, 40] and the right side is drawn in [20, 20]
    # only when the image is 20 wide): use a 40-wide image and check every drawn crop
    regions = [([0, 0, 20, 40], 'chosen'), ([10, 0, 30, 40], 'half'), ([16, 0, 26, 40], 'most')]
    for seed in range(60):
        np.random.seed(seed)
        out = sampler(results_for(regions, w=40))
        x0, y0, x1, y1 = out['region_crop']
        if out['region_texts'][0] != 'chosen':
            continue
        boxes = dict(zip(out['region_texts'], out['gt_bboxes'].tensor.numpy().tolist()))
        for name, (bx1, by1, bx2, by2) in [(t, b) for b, t in regions[1:]]:
            inside = max(0, min(bx2, x1) - max(bx1, x0)) * max(0, min(by2, y1) - max(by1, y0))
            frac = inside / ((bx2 - bx1) * (by2 - by1))
            assert (name in boxes) == (frac > 0.5), (seed, name, frac)
            if name in boxes:
                assert boxes[name] == [max(bx1, x0) - x0, max(by1, y0) - y0, min(bx2, x1) - x0, min(by2, y1) - y0]


def test_whole_image_caption_region_and_max_regions():
    regions = [([1, 1, 10, 10], 'a'), ([20, 1, 30, 10], 'b'), ([40, 1, 50, 10], 'c')]
    np.random.seed(0)
    out = RegionTextSampler(max_regions=2, crop=False, flip_prob=0)(results_for(regions, captions=['whole']))
    assert out['text'] == 'whole' and out['region_texts'][0] == 'whole'
    assert out['region_is_image'] == [True, False] and len(out['gt_bboxes']) == 2
    assert out['gt_bboxes'].tensor[0].tolist() == [0, 0, W, H]
    out = RegionTextSampler(max_regions=10, crop=False, flip_prob=0)(results_for(regions))
    assert out['text'] == '' and sorted(out['region_texts']) == ['a', 'b', 'c']


def test_flip_swaps_left_right_and_mirrors_boxes():
    regions = [([2, 3, 12, 13], 'the left dot')]
    res = results_for(regions, captions=['a dot on the left, leftmost'])
    img = res['img'].copy()
    out = RegionTextSampler(crop=False, flip_prob=1)(res)
    assert out['flip'] and out['flip_direction'] == 'horizontal'
    assert out['text'] == 'a dot on the right, rightmost'
    assert out['region_texts'] == ['a dot on the right, rightmost', 'the right dot']
    assert out['gt_bboxes'].tensor[1].tolist() == [W - 12, 3, W - 2, 13]
    np.testing.assert_array_equal(out['img'], img[:, ::-1])
    out = RegionTextSampler(crop=False, flip_prob=1, careful_flip=True)(results_for(regions))
    assert not out['flip'] and out['region_texts'] == ['the left dot']


def test_attributes_and_seeded_draws():
    res = dict(img=np.zeros((H, W, 3), np.uint8), captions=[], regions=[
        dict(bbox=[1, 1, 20, 20], captions=['circle', 'disc'], attributes=['red', 'big red'])])
    texts = set()
    for seed in range(30):
        np.random.seed(seed)
        texts.add(RegionTextSampler()(dict(res))['region_texts'][0])
    assert texts <= {'red circle', 'big red circle', 'red disc', 'big red disc'} and len(texts) > 1
    np.random.seed(5)
    a = RegionTextSampler()(dict(res))
    np.random.seed(5)
    b = RegionTextSampler()(dict(res))
    assert a['region_crop'] == b['region_crop'] and a['region_texts'] == b['region_texts']


def test_sampler_checks_boxes_at_load_time():
    res = results_for([([50, 5, 80, 10], 'x')])
    res['image_check'] = dict(where='f.jsonl, line 2 (image 7)', max_size=None)
    with pytest.raises(AnnotationError, match=r'f\.jsonl, line 2 \(image 7\), elem 0 has a box .* outside'):
        RegionTextSampler()(res)


# ------------------------------------------------------------------------------------------------ pipeline
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='RegionTextSampler', max_regions=3),
            dict(type='mmdet.Resize', scale=(32, 16), keep_ratio=False), dict(type='PackRegionTextInputs')]


def test_pipeline_packs_interface_2(root):
    ds = build(root, ENTRIES, pipeline=PIPELINE)
    ds.set_sample_seeding(True, seed=0, epoch=0)
    out = ds[0]
    assert out['inputs'].shape == (3, 16, 32) and out['inputs'].dtype == torch.uint8
    s = out['data_samples']
    assert s.img_id == 3 and s.data_kind == 'region_text' and s.text in ('a scene', 'left of it', 'right of it')
    n = len(s.region_texts)
    assert 1 <= n <= 3 and len(s.region_is_image) == n and s.region_is_image[0] is True
    boxes = s.gt_instances.bboxes
    assert isinstance(boxes, torch.Tensor) and boxes.dtype == torch.float32 and boxes.shape == (n, 4)
    assert s.img_shape == (16, 32) and boxes[0].tolist() == [0, 0, 32, 16]  # the whole-image caption's box
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 32).all() and (boxes[:, 3] <= 16).all()
    assert {'scale_factor', 'flip', 'ori_shape'} <= set(s.metainfo)
    # seeded per sample: the same sample draws the same regions
    again = ds[0]['data_samples']
    assert again.region_texts == s.region_texts and torch.equal(again.gt_instances.bboxes, boxes)


def test_mix_with_captions_in_concat_dataset(root):
    regions = build(root, ENTRIES, pipeline=PIPELINE)
    (root / 'caps.jsonl').write_text(json.dumps(dict(image='b.png', caption='a plain pair')) + '\n')
    captions = CaptionDataset(data_root=str(root), ann_file='caps.jsonl', data_prefix=dict(img='img/'), pipeline=[
        dict(type='LoadImageFromFile'), dict(type='mmdet.Resize', scale=(32, 16), keep_ratio=False),
        dict(type='PackRegionTextInputs')])
    mixed = ConcatDataset([regions, captions])
    assert len(mixed) == 3
    pair = mixed[2]['data_samples']
    assert pair.data_kind == 'image_text' and pair.text == 'a plain pair'
    assert pair.region_texts == [] and pair.region_is_image == [] and pair.gt_instances.bboxes.shape == (0, 4)
    assert mixed[0]['data_samples'].data_kind == 'region_text'


def test_pack_errors():
    with pytest.raises(KeyError, match='has no text and no regions'):
        PackRegionTextInputs()(dict(img=np.zeros((4, 4, 3), np.uint8), text='', img_id=1))
    res = RegionTextSampler(crop=False)(results_for([([1, 1, 5, 5], 'x')]))
    res['region_texts'] = []
    with pytest.raises(KeyError, match='0 region texts, 1 region_is_image flags and 1 boxes'):
        PackRegionTextInputs()(res)
