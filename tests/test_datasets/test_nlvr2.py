"""NLVR2Dataset (official JSON lines and X-VLM's list), its errors, the pair pipeline and nlvr2_collate."""
import json

import numpy as np
import pytest
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmengine.registry import FUNCTIONS
from PIL import Image

from mmvlg.datasets import AnnotationError, NLVR2Dataset, nlvr2_collate
from mmvlg.utils import register_all_modules

register_all_modules()


@pytest.fixture()
def root(tmp_path):
    (tmp_path / 'img' / '12').mkdir(parents=True)
    for name, (h, w) in {'12/train-1-0-img0.png': (8, 10), '12/train-1-0-img1.png': (12, 6),
                         'dev-3-1-img0.png': (8, 8), 'dev-3-1-img1.png': (8, 8)}.items():
        Image.fromarray(np.full((h, w, 3), 50, np.uint8)).save(tmp_path / 'img' / name)
    return tmp_path


def build(root, name, content, **kwargs):
    (root / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return NLVR2Dataset(data_root=str(root), ann_file=name, data_prefix=dict(img='img/'), **kwargs)


OFFICIAL = [dict(identifier='train-1-0-0', sentence=' Two dogs. ', label='True', directory=12),
            dict(identifier='train-1-0-1', sentence='No dog.', label='False', directory=12),
            dict(identifier='dev-3-1-0', sentence='A cat.', label='True')]


def test_official_layout(root):
    ds = build(root, 'train.json', '\n'.join(json.dumps(e) for e in OFFICIAL) + '\n')
    assert len(ds) == 3
    info = ds.get_data_info(0)
    assert info['img_id'] == 'train-1-0-0' and info['text'] == 'Two dogs.' and info['label'] == 1
    assert info['img_paths'][0].endswith('img/12/train-1-0-img0.png')
    assert info['img_paths'][1].endswith('img/12/train-1-0-img1.png')
    assert ds.get_data_info(1)['label'] == 0 and ds.get_data_info(2)['img_paths'][1].endswith('img/dev-3-1-img1.png')


def test_xvlm_layout(root):
    ds = build(root, 'nlvr_dev.json', [dict(images=['dev-3-1-img0.png', 'dev-3-1-img1.png'], sentence='x',
                                            label=False), dict(images=['dev-3-1-img1.png', 'dev-3-1-img0.png'],
                                                               sentence='y', label=1, template='count_more')])
    assert [ds.get_data_info(i)['label'] for i in range(2)] == [0, 1]
    assert ds.get_data_info(0)['img_id'] == 0 and ds.get_data_info(1)['template'] == 'count_more'


@pytest.mark.parametrize('entry,match', [
    (dict(images=['dev-3-1-img0.png'], sentence='x', label='True', identifier='s7'),
     r'bad\.json, entry 0: statement \'s7\' has no second image'),
    (dict(images=['dev-3-1-img0.png'], sentence='x', label='True'), r'entry 0: statement 0 has no second image'),
    (dict(images=['dev-3-1-img0.png', 'dev-3-1-img1.png'], sentence='x', label='maybe'),
     r'statement 0 has the label \'maybe\''),
    (dict(images=['dev-3-1-img0.png', 'dev-3-1-img1.png'], sentence=' ', label='True'),
     r'statement 0 has an empty or non-string "sentence"'),
    (dict(identifier='dev3', sentence='x', label='True'), r'statement \'dev3\': expected X-VLM\'s "images" list'),
])
def test_errors_name_file_and_statement(root, entry, match):
    with pytest.raises(AnnotationError, match=match):
        build(root, 'bad.json', [entry])


def test_missing_second_image_file_and_skip(root):
    line = json.dumps(dict(identifier='dev-4-0-0', sentence='x', label='True'))
    (root / 'img' / 'dev-4-0-img0.png').write_bytes((root / 'img' / 'dev-3-1-img0.png').read_bytes())
    with pytest.raises(FileNotFoundError, match=r"dev\.json, line 1: statement 'dev-4-0-0': its second image: .*"
                                                r"dev-4-0-img1\.png"):
        build(root, 'dev.json', line + '\n')
    with pytest.warns(UserWarning, match='skipped 1 invalid statement'):
        ds = build(root, 'dev.json', line + '\n' + json.dumps(OFFICIAL[2]) + '\n', skip_invalid=True)
    assert len(ds) == 1


PIPELINE = [dict(type='ApplyToImagePair', transforms=[dict(type='LoadImageFromFile'),
                                                      dict(type='mmdet.Resize', scale=(16, 16), keep_ratio=False)]),
            dict(type='PackNLVR2Inputs')]


def test_pair_pipeline_collate_and_preprocessor(root):
    ds = build(root, 'train.json', '\n'.join(json.dumps(e) for e in OFFICIAL) + '\n', pipeline=PIPELINE)
    item = ds[0]
    assert [t.shape for t in item['inputs']] == [(3, 16, 16), (3, 16, 16)]
    left, right = item['data_samples']
    assert (left.image_index, right.image_index) == (0, 1)
    assert left.text == right.text == 'Two dogs.' and left.label == right.label == 1
    assert left.img_id == right.img_id == 'train-1-0-0'
    assert left.ori_shape == (8, 10) and right.ori_shape == (12, 6) and left.img_path.endswith('img0.png')
    assert FUNCTIONS.get('nlvr2_collate') is nlvr2_collate
    batch = nlvr2_collate([ds[0], ds[1]])
    assert len(batch['inputs']) == 4 and [s.image_index for s in batch['data_samples']] == [0, 1, 0, 1]
    assert [s.label for s in batch['data_samples'][::2]] == [1, 0]
    out = DetDataPreprocessor(mean=[0, 0, 0], std=[1, 1, 1], pad_size_divisor=8)(batch)
    assert out['inputs'].shape == (4, 3, 16, 16) and out['inputs'].dtype == torch.float32
    with pytest.raises(ValueError, match='sample 0 of the batch is not an image pair'):
        nlvr2_collate([dict(inputs=torch.zeros(3, 4, 4), data_samples=left)])


def test_load_error_names_statement_and_image(root):
    ds = build(root, 'train.json', json.dumps(OFFICIAL[0]) + '\n', pipeline=PIPELINE)
    (root / 'img' / '12' / 'train-1-0-img1.png').write_bytes(b'not an image')
    with pytest.raises(Exception, match=r"statement 'train-1-0-0' \(right image\): image file"):
        ds[0]
