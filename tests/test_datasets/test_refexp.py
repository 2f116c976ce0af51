"""Tests of the MDETR-format referring-expression data sets (mmvlg/datasets/refexp.py)."""
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmvlg.datasets import AnnotationError, ImageError, RefCOCODataset, SynthRefDataset
from mmvlg.testing import tiny_synthref
from mmvlg.utils import register_all_modules

register_all_modules()


@pytest.fixture(scope='module')
def synthref_root(tmp_path_factory) -> str:
    return tiny_synthref(str(tmp_path_factory.mktemp('synthref') / 'synthref'), num_scenes=6)


def synthref_kwargs(root: str, split: str = 'train', **kwargs) -> dict:
    return dict(data_root=root, ann_file=f'annotations/finetune_synthref_{split}.json',
                data_prefix=dict(img='images/'), pipeline=[], **kwargs)


def write_refexp(root, images, annotations, make_images=True) -> str:
    """Write an MDETR-format file ``ann.json`` (and 16x12 PNGs for its image entries) under ``root``."""
    if make_images:
        for img in images:
            path = osp.join(root, 'imgs', img['file_name'])
            if not osp.exists(path):
                (root / 'imgs').mkdir(exist_ok=True)
                Image.fromarray(np.full((12, 16, 3), 128, np.uint8)).save(path)
    ann_file = root / 'ann.json'
    ann_file.write_text(json.dumps(dict(images=images, annotations=annotations, categories=[])))
    return str(ann_file)


def image_entry(i: int, caption: str = 'the red circle', file_name: str = 'a.png', **kw) -> dict:
    return dict(dict(id=i, file_name=file_name, height=12, width=16, caption=caption, original_id=100 + i), **kw)


def ann_entry(i: int, image_id: int, bbox=(1, 2, 5, 4), spans=((0, 14), )) -> dict:
    return dict(id=i, image_id=image_id, bbox=list(bbox), tokens_positive=[list(s) for s in spans])


def infos(ds) -> list:
    """Every data_info of ``ds`` (``ds.data_list`` is emptied once the data are serialized)."""
    return [ds.get_data_info(i) for i in range(len(ds))]


def build(tmp_path, ann_file, **kwargs):
    kwargs.setdefault('pipeline', [])
    return RefCOCODataset(data_root=str(tmp_path), ann_file=ann_file, data_prefix=dict(img='imgs/'), **kwargs)


# ---------------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize('cls', [SynthRefDataset, RefCOCODataset])
def test_load_tiny_synthref(synthref_root, cls):
    with open(osp.join(synthref_root, 'annotations', 'finetune_synthref_val.json')) as f:
        raw = json.load(f)
    ds = cls(**synthref_kwargs(synthref_root, 'val', test_mode=True))
    assert len(ds) == len(raw['images'])
    assert ds.split == 'synthref_val'
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert osp.isfile(info['img_path'])
        assert info['split'] == 'synthref_val' and info['height'] == info['width'] == 64
        assert len(info['instances']) == 1
        inst = info['instances'][0]
        x1, y1, x2, y2 = inst['bbox']
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
        assert inst['bbox_label'] == 0 and inst['ignore_flag'] == 0
        for s, e in inst['tokens_positive']:
            assert 0 <= s < e <= len(info['text'])
        raw_img = raw['images'][i]
        assert info['text'] == raw_img['caption'] and info['original_id'] == raw_img['original_id']
        x, y, w, h = raw['annotations'][i]['bbox']
        np.testing.assert_allclose(inst['bbox'], [x, y, x + w, y + h])
        assert info['tokens_positive_eval'] == raw_img['tokens_positive_eval']


def test_synthref_generates_on_first_use(tmp_path):
    gen = dict(num_scenes=dict(train=2, val=1, testA=1, testB=1), image_size=32, seed=5)
    ds = SynthRefDataset(**synthref_kwargs(str(tmp_path / 'sr'), 'train'), generate=gen)
    assert len(ds) >= 2 and osp.isfile(osp.join(tmp_path, 'sr', 'meta.json'))
    # a second data set with the same arguments reuses the copy
    assert len(SynthRefDataset(**synthref_kwargs(str(tmp_path / 'sr'), 'train'), generate=gen)) == len(ds)


def test_fraction_keeps_half_of_the_scenes(synthref_root):
    full = SynthRefDataset(**synthref_kwargs(synthref_root))
    half = SynthRefDataset(**synthref_kwargs(synthref_root), fraction=0.5)
    scenes = sorted({d['original_id'] for d in infos(full)})
    kept = sorted({d['original_id'] for d in infos(half)})
    assert len(scenes) == 6 and kept == scenes[:3]
    # every expression of a kept scene is kept
    assert len(half) == sum(d['original_id'] in kept for d in infos(full))
    with pytest.raises(ValueError, match='fraction'):
        SynthRefDataset(**synthref_kwargs(synthref_root), fraction=0)


def test_size_as_strings_is_accepted(tmp_path):
    """MDETR's Flickr30k files store height and width as strings."""
    ann = write_refexp(tmp_path, [image_entry(0, height='12', width='16')], [ann_entry(0, 0)])
    assert build(tmp_path, ann).get_data_info(0)['height'] == 12
    ann = write_refexp(tmp_path, [image_entry(0, height='twelve')], [ann_entry(0, 0)])
    with pytest.raises(AnnotationError, match=r'ann\.json: expression 0 .*non-integer image size'):
        build(tmp_path, ann)


# ------------------------------------------------------------------------------------------------- bad input


def test_missing_image_file(tmp_path):
    ann = write_refexp(tmp_path, [image_entry(0), image_entry(7, file_name='gone.png')], [ann_entry(0, 0),
                                                                                         ann_entry(1, 7)],
                       make_images=False)
    (tmp_path / 'imgs').mkdir()
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(tmp_path / 'imgs' / 'a.png')
    with pytest.raises(FileNotFoundError) as err:
        build(tmp_path, ann)
    msg = str(err.value)
    assert 'ann.json' in msg and 'expression 7' in msg and osp.join('imgs', 'gone.png') in msg
    # check_images=False defers the problem to loading
    assert len(build(tmp_path, ann, check_images=False)) == 2


def test_corrupt_image_names_the_path(tmp_path):
    ann = write_refexp(tmp_path, [image_entry(0, file_name='bad.png')], [ann_entry(0, 0)], make_images=False)
    (tmp_path / 'imgs').mkdir()
    (tmp_path / 'imgs' / 'bad.png').write_bytes(b'\x00garbage, not an image\xff' * 8)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'), dict(type='PackGroundingInputs')]
    # at start-up (check_images), from the header
    with pytest.raises(ImageError, match=r'ann\.json: expression 0 \(bad\.png\): image file .* is not a readable'
                       ) as err:
        build(tmp_path, ann)
    assert osp.join('imgs', 'bad.png') in str(err.value)
    # at load time, mmvlg's LoadImageFromFile (not mmcv's "AssertionError: failed to load image")
    ds = build(tmp_path, ann, check_images=False, pipeline=pipeline)
    with pytest.raises(ImageError, match=r'ann\.json: expression 0 \(bad\.png\): image file .* cannot be '
                       'decoded') as err:
        ds[0]
    assert osp.join('imgs', 'bad.png') in str(err.value)


def test_empty_expression(tmp_path):
    ann = write_refexp(tmp_path, [image_entry(0), image_entry(3, caption='   ')], [ann_entry(0, 0), ann_entry(1, 3)])
    with pytest.raises(AnnotationError, match=r'ann\.json: expression 3 \(a\.png\) has an empty caption'):
        build(tmp_path, ann)


@pytest.mark.parametrize('bbox', [(10, 2, 10, 4), (-5, 0, 4, 4), (1, 2, 0, 4)])
def test_box_outside_image(tmp_path, bbox):
    ann = write_refexp(tmp_path, [image_entry(4)], [ann_entry(9, 4, bbox=bbox)])
    with pytest.raises(AnnotationError, match=r'ann\.json: expression 4 .*annotation 9 lies outside the 16x12'):
        build(tmp_path, ann)


def test_box_within_tolerance_is_clipped(tmp_path):
    ann = write_refexp(tmp_path, [image_entry(0)], [ann_entry(0, 0, bbox=(-0.5, 1, 16.4, 4))])
    assert build(tmp_path, ann).get_data_info(0)['instances'][0]['bbox'] == pytest.approx([0.0, 1.0, 15.9, 5.0])


def test_unknown_image_id(tmp_path):
    ann = write_refexp(tmp_path, [image_entry(0)], [ann_entry(0, 0), ann_entry(5, 42)])
    with pytest.raises(AnnotationError, match=r'ann\.json: annotation 5 references unknown image id 42'):
        build(tmp_path, ann)


def test_malformed_json(tmp_path):
    (tmp_path / 'ann.json').write_text('{"images": [')
    with pytest.raises(AnnotationError, match=r'ann\.json: not a valid JSON file'):
        build(tmp_path, str(tmp_path / 'ann.json'))


def test_missing_images_key(tmp_path):
    (tmp_path / 'ann.json').write_text(json.dumps(dict(annotations=[])))
    with pytest.raises(AnnotationError, match=r'ann\.json: expected a JSON object with "images" and "annotations"'):
        build(tmp_path, str(tmp_path / 'ann.json'))


def test_missing_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.json'):
        build(tmp_path, str(tmp_path / 'nothere.json'))


def test_bad_tokens_positive(tmp_path):
    ann = write_refexp(tmp_path, [image_entry(2)], [ann_entry(0, 2, spans=((0, 99), ))])
    with pytest.raises(AnnotationError, match=r'expression 2 .*span \[0, 99\] .*outside the caption'):
        build(tmp_path, ann)
    ann_list = [dict(ann_entry(0, 2), tokens_positive=[0, 5])]  # flat, not a list of spans
    ann = write_refexp(tmp_path, [image_entry(2)], ann_list)
    with pytest.raises(AnnotationError, match=r'expression 2 .*list of \[start, end\] spans'):
        build(tmp_path, ann)


def test_no_box(tmp_path):
    ann = write_refexp(tmp_path, [image_entry(0), image_entry(1)], [ann_entry(0, 0)])
    with pytest.raises(AnnotationError, match=r'expression 1 \(a\.png\) has no referred box'):
        build(tmp_path, ann)
    # at test time too: it could only count as a miss
    with pytest.raises(AnnotationError, match=r'expression 1 \(a\.png\) has no referred box'):
        build(tmp_path, ann, test_mode=True)


def test_skip_invalid_warns_with_count(tmp_path):
    images = [image_entry(0), image_entry(1, caption=''), image_entry(2), image_entry(3)]
    anns = [ann_entry(0, 0), ann_entry(1, 1), ann_entry(2, 2, bbox=(0, 0, 50, 50)), ann_entry(3, 3)]
    ann = write_refexp(tmp_path, images, anns)
    with pytest.warns(UserWarning, match=r'ann\.json: skipped 2 invalid expression\(s\) \(skip_invalid=True\); '
                      r'first: .*expression 1'):
        ds = build(tmp_path, ann, skip_invalid=True)
    assert [d['img_id'] for d in infos(ds)] == [0, 3]


def test_duplicate_image_id(tmp_path):
    ann = write_refexp(tmp_path, [image_entry(0), image_entry(0)], [ann_entry(0, 0)])
    with pytest.raises(AnnotationError, match='image id 0 appears twice'):
        build(tmp_path, ann)
