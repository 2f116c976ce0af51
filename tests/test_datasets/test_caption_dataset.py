"""CaptionDataset (COCO captions, JSON lines, JSON list), its errors, and PackImageTextInputs."""
import json

import numpy as np
import pytest
from PIL import Image

from mmvlg.datasets import AnnotationError, CaptionDataset
from mmvlg.datasets.transforms import PackImageTextInputs
from mmvlg.utils import register_all_modules

register_all_modules()


@pytest.fixture()
def root(tmp_path):
    (tmp_path / 'img').mkdir()
    for name in ('a.png', 'b.png'):
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tmp_path / 'img' / name)
    return tmp_path


def build(root, name, content, **kwargs):
    path = root / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return CaptionDataset(data_root=str(root), ann_file=name, data_prefix=dict(img='img/'), **kwargs)


def test_coco_captions(root):
    ann = dict(images=[dict(id=7, file_name='a.png', height=8, width=10), dict(id=9, file_name='b.png')],
               annotations=[dict(id=1, image_id=7, caption=' a dog. '), dict(id=2, image_id=7, caption='a cat'),
                            dict(id=3, image_id=9, caption='a car')])
    ds = build(root, 'captions_val.json', ann)
    assert len(ds) == 3
    info = ds.get_data_info(0)
    assert info['text'] == 'a dog.' and info['img_id'] == 7 and info['text_id'] == 1
    assert info['split'] == 'captions_val' and (info['height'], info['width']) == (8, 10)
    assert info['img_path'].endswith('img/a.png')
    assert [ds.get_data_info(i)['img_id'] for i in range(3)] == [7, 7, 9]


def test_jsonl_and_list(root):
    lines = [dict(image='a.png', caption='a red circle'), dict(image='b.png', caption=['one', 'two'], image_id=5)]
    ds = build(root, 'cc.jsonl', '\n'.join(json.dumps(x) for x in lines) + '\n\n')
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [i['text'] for i in infos] == ['a red circle', 'one', 'two']
    assert [i['img_id'] for i in infos] == ['a.png', 5, 5] and [i['text_id'] for i in infos] == [0, 1, 2]
    ds = build(root, 'sbu.json', lines)
    assert len(ds) == 3 and ds.get_data_info(2)['text'] == 'two'


@pytest.mark.parametrize('name,content,match', [
    ('bad.jsonl', '{"image": "a.png", "caption": "x"}\n{"image": "a.png", "caption": \n', r'bad\.jsonl, line 2'),
    ('bad.jsonl', '{"image": "a.png", "caption": "x"}\n\n{"caption": "y"}\n', r'line 3: expected an object'),
    ('bad.jsonl', '{"image": "a.png"}\n', r'line 1: no "caption"'),
    ('bad.jsonl', '{"image": "a.png", "caption": "  "}\n', r'line 1 \(a\.png\) has an empty'),
    ('bad.json', dict(images=[dict(id=1, file_name='a.png')], annotations=[dict(id=4, image_id=2, caption='x')]),
     r'bad\.json: annotation 4 references unknown image id 2'),
    ('bad.json', dict(images=[dict(id=1, file_name='a.png')], annotations=[dict(id=4, image_id=1, caption='')]),
     r'annotation 4 \(a\.png\) has an empty'),
    ('bad.json', dict(images=[dict(id=1, file_name='a.png')] * 2, annotations=[]), 'image id 1 appears twice'),
    ('bad.json', '{"images": [', r'bad\.json: not a valid JSON file'),
    ('bad.json', dict(foo=1), 'COCO captions format'),
])
def test_errors_name_file_and_entry(root, name, content, match):
    with pytest.raises(AnnotationError, match=match):
        build(root, name, content)


def test_missing_image_and_skip_invalid(root):
    with pytest.raises(FileNotFoundError, match=r'x\.jsonl, line 2: image file .*c\.png'):
        build(root, 'x.jsonl', '{"image": "a.png", "caption": "a"}\n{"image": "c.png", "caption": "b"}\n')
    with pytest.warns(UserWarning, match='skipped 1 invalid'):
        ds = build(root, 'y.jsonl', '{"image": "a.png", "caption": ""}\n{"image": "b.png", "caption": "b"}\n',
                   skip_invalid=True)
    assert len(ds) == 1
    with pytest.raises(FileNotFoundError, match='does not exist'):
        CaptionDataset(data_root=str(root), ann_file='nope.json')


def test_pipeline_packs_image_and_caption(root):
    pipeline = [dict(type='LoadImageFromFile'), dict(type='mmdet.Resize', scale=(16, 16), keep_ratio=False),
                dict(type='PackImageTextInputs')]
    ds = build(root, 'p.jsonl', '{"image": "a.png", "caption": "a dog", "image_id": 3}\n', pipeline=pipeline)
    out = ds[0]
    assert out['inputs'].shape == (3, 16, 16)
    meta = out['data_samples'].metainfo
    assert meta['text'] == 'a dog' and meta['img_id'] == 3 and meta['text_id'] == 0
    assert meta['img_shape'] == (16, 16) and meta['ori_shape'] == (8, 10)
    with pytest.raises(KeyError, match='has no text'):
        PackImageTextInputs().transform(dict(img=np.zeros((4, 4, 3), np.uint8), img_path='x.png'))
