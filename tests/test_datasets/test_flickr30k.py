"""Tests of Flickr30kEntitiesDataset (mmvlg/datasets/flickr30k.py) on a tiny file in MDETR's format."""
import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from mmvlg.datasets import AnnotationError, Flickr30kEntitiesDataset
from mmvlg.datasets.transforms.formatting import DEFAULT_META_KEYS
from mmvlg.evaluation.metrics import FlickrRecallMetric
from mmvlg.utils import register_all_modules

register_all_modules()

CAP0 = 'Two young guys with shaggy hair look at their hands .'
CAP1 = 'A man and a man walk .'
CAP2 = 'It is sunny .'
# MDETR's separateGT layout: one entry per caption, sizes as strings, phrases in tokens_positive_eval order
IMAGES = [
    dict(id=0, file_name='1000.jpg', height='48', width='64', caption=CAP0, dataset_name='flickr',
         tokens_negative=[[0, len(CAP0)]], sentence_id=0, original_img_id=1000,
         tokens_positive_eval=[[[0, 14]], [[20, 31]], [[40, 51]]]),
    # "A man" and "a man" name the same entity: its box carries both spans
    dict(id=1, file_name='1000.jpg', height='48', width='64', caption=CAP1, dataset_name='flickr',
         tokens_negative=[[0, len(CAP1)]], sentence_id=1, original_img_id=1000,
         tokens_positive_eval=[[[0, 5]], [[10, 15]]]),
    # no visual phrase
    dict(id=2, file_name='1000.jpg', height='48', width='64', caption=CAP2, dataset_name='flickr',
         tokens_negative=[[0, len(CAP2)]], sentence_id=2, original_img_id=1000, tokens_positive_eval=[]),
]
ANNOTATIONS = [
    # "Two young guys": two boxes
    dict(id=0, image_id=0, bbox=[2, 3, 10, 20], area=200, iscrowd=0, category_id=1, tokens_positive=[[0, 14]],
         phrase_ids=7),
    dict(id=1, image_id=0, bbox=[30, 3, 12, 20], area=240, iscrowd=0, category_id=1, tokens_positive=[[0, 14]],
         phrase_ids=7),
    # "shaggy hair"
    dict(id=2, image_id=0, bbox=[4, 1, 6, 4], area=24, iscrowd=0, category_id=1, tokens_positive=[[20, 31]],
         phrase_ids=8),
    # "their hands"
    dict(id=3, image_id=0, bbox=[10, 30, 30, 10], area=300, iscrowd=0, category_id=1, tokens_positive=[[40, 51]],
         phrase_ids=9),
    dict(id=4, image_id=1, bbox=[0, 0, 20, 40], area=800, iscrowd=0, category_id=1,
         tokens_positive=[[0, 5], [10, 15]], phrase_ids=10),
]


@pytest.fixture
def flickr_root(tmp_path):
    (tmp_path / 'images').mkdir()
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(tmp_path / 'images' / '1000.jpg')
    write(tmp_path, IMAGES, ANNOTATIONS)
    return tmp_path


def write(root, images, annotations, name='final_flickr_separateGT_val.json'):
    (root / name).write_text(json.dumps(dict(images=images, annotations=annotations, categories=[])))
    return str(root / name)


def infos(ds) -> list:
    """Every data_info of ``ds`` (``ds.data_list`` is emptied once the data are serialized)."""
    return [ds.get_data_info(i) for i in range(len(ds))]


def build(root, name='final_flickr_separateGT_val.json', **kwargs):
    return Flickr30kEntitiesDataset(data_root=str(root), ann_file=name, data_prefix=dict(img='images/'),
                                    pipeline=kwargs.pop('pipeline', []), **kwargs)


def test_phrases_and_keys(flickr_root):
    ds = build(flickr_root, test_mode=True)
    assert len(ds) == 3 and ds.split == 'flickr_separateGT_val'
    info = ds.get_data_info(0)
    assert info['text'] == CAP0 and (info['height'], info['width']) == (48, 64)
    assert info['original_id'] == 1000 and info['sentence_id'] == 0 and info['split'] == 'flickr_separateGT_val'
    assert len(info['instances']) == 4
    assert [p['phrase_id'] for p in info['phrases']] == [0, 1, 2]
    assert [CAP0[s:e] for p in info['phrases'] for s, e in p['tokens_positive']] == [
        'Two young guys', 'shaggy hair', 'their hands']
    assert info['phrases'][0]['gt_bboxes'] == [[2., 3., 12., 23.], [30., 3., 42., 23.]]
    assert info['phrases'][1]['gt_bboxes'] == [[4., 1., 10., 5.]]
    assert info['phrases'][2]['gt_bboxes'] == [[10., 30., 40., 40.]]
    # one box named by two phrases belongs to both
    two = ds.get_data_info(1)['phrases']
    assert [p['gt_bboxes'] for p in two] == [[[0., 0., 20., 40.]]] * 2
    # a caption without boxes is kept, without phrases, for testing
    assert ds.get_data_info(2)['phrases'] == [] and ds.get_data_info(2)['instances'] == []


def test_training_set_drops_captions_without_boxes(flickr_root):
    ds = build(flickr_root)
    assert [d['img_id'] for d in infos(ds)] == [0, 1]


def test_without_tokens_positive_eval(flickr_root):
    images = [{k: v for k, v in img.items() if k != 'tokens_positive_eval'} for img in IMAGES[:1]]
    write(flickr_root, images, ANNOTATIONS[:4])
    phrases = build(flickr_root).get_data_info(0)['phrases']
    assert [p['tokens_positive'] for p in phrases] == [[[0, 14]], [[20, 31]], [[40, 51]]]
    assert [len(p['gt_bboxes']) for p in phrases] == [2, 1, 1]


def test_phrase_without_box_is_an_error(flickr_root):
    images = copy.deepcopy(IMAGES[:2])
    images[0]['tokens_positive_eval'].append([[32, 36]])  # "look" has no box
    write(flickr_root, images, ANNOTATIONS)
    with pytest.raises(AnnotationError, match=r"final_flickr_separateGT_val\.json: caption 0 \(1000\.jpg\): "
                                              r"phrase 3 \('look'\) has no box"):
        build(flickr_root)
    with pytest.warns(UserWarning, match=r'skipped 1 caption\(s\) with inconsistent phrases'):
        assert [d['img_id'] for d in infos(build(flickr_root, skip_invalid=True))] == [1]


def test_box_of_no_phrase_and_bad_eval_spans(flickr_root):
    images = copy.deepcopy(IMAGES[:1])
    images[0]['tokens_positive_eval'] = images[0]['tokens_positive_eval'][:2]
    write(flickr_root, images, ANNOTATIONS[:4])
    with pytest.raises(AnnotationError, match=r'caption 0 .*belongs to no phrase'):
        build(flickr_root)
    images[0]['tokens_positive_eval'] = [[[0, 500]]]
    write(flickr_root, images, ANNOTATIONS[:4])
    with pytest.raises(AnnotationError, match=r'caption 0 .*tokens_positive_eval entry \[\[0, 500\]\]'):
        build(flickr_root)


def test_pipeline_and_metric(flickr_root):
    """The phrases travel through the pipeline as metainfo and feed FlickrRecallMetric."""
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'),
                dict(type='PackGroundingInputs', meta_keys=DEFAULT_META_KEYS + ('phrases', 'sentence_id'))]
    ds = build(flickr_root, test_mode=True, pipeline=pipeline)
    results = []
    for i in range(2):
        item = ds[i]
        sample = item['data_samples']
        assert item['inputs'].shape == (3, 48, 64)
        assert sample.phrases == ds.get_data_info(i)['phrases'] and sample.sentence_id == i
        # a perfect model: the first GT box of every phrase
        pred = dict(phrase_bboxes=[torch.tensor(p['gt_bboxes'][:1]) for p in sample.phrases])
        results.append(dict(sample.to_dict(), pred_instances=pred))
    metric = FlickrRecallMetric(topk=(1, ))
    metric.process({}, results)
    assert metric.evaluate(2) == {'flickr/Recall@1': 100.0, 'flickr/flickr_separateGT_val_Recall@1': 100.0}
