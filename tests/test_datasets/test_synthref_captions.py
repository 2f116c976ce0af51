"""The SynthRef caption corpus: descriptions, deterministic atomic generation, dataset with generate=..."""
import filecmp
import json
import os
import os.path as osp

import pytest

from mmvlg.datasets import SynthRefCaptionDataset, SynthRefCaptionsConfig, generate_synthref_captions
from mmvlg.datasets.synthref import _Obj
from mmvlg.datasets.synthref_captions import caption_vocabulary, describe_scene

TINY = dict(num_scenes=dict(train=3, val=2), image_size=32)


def test_descriptions():
    objs = [_Obj('circle', 'red', 'big', 20, 5, 3), _Obj('square', 'blue', 'small', 5, 5, 2),
            _Obj('circle', 'green', 'small', 12, 5, 2)]
    assert describe_scene(objs, 'list') == 'a big red circle, a small blue square and a small green circle'
    assert describe_scene(objs, 'left-to-right') == \
        'from left to right: a small blue square, a small green circle and a big red circle'
    assert describe_scene(objs, 'count') == 'two circles and a square'
    assert describe_scene(objs[:1], 'count') == 'a circle'
    with pytest.raises(ValueError, match='unknown phrasing'):
        describe_scene(objs, 'poem')


def test_generation_is_deterministic_and_cached(tmp_path):
    a = generate_synthref_captions(str(tmp_path / 'a'), SynthRefCaptionsConfig(**TINY))
    b = generate_synthref_captions(str(tmp_path / 'b'), SynthRefCaptionsConfig(**TINY))
    files = sorted(osp.relpath(osp.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
    assert 'annotations/captions_train.json' in files and 'images/val/000001.png' in files
    assert not filecmp.cmpfiles(a, b, files, shallow=False)[1]  # byte-identical
    assert not [p for p in os.listdir(tmp_path) if p.startswith('.')]  # no temporary folder left
    with open(osp.join(a, 'annotations', 'captions_train.json')) as f:
        ann = json.load(f)
    assert len(ann['images']) == 3 and len(ann['annotations']) == 9  # three phrasings per scene
    vocab = set(caption_vocabulary())
    for a_ in ann['annotations']:
        words = a_['caption'].replace(',', ' , ').replace(':', ' : ').split()
        assert set(words) <= vocab, a_['caption']
    mtime = os.path.getmtime(osp.join(a, 'meta.json'))
    generate_synthref_captions(a, SynthRefCaptionsConfig(**TINY))  # identical arguments: kept
    assert os.path.getmtime(osp.join(a, 'meta.json')) == mtime
    with pytest.raises(FileExistsError, match='other arguments'):
        generate_synthref_captions(a, SynthRefCaptionsConfig(num_scenes=dict(train=2), image_size=32))


def test_dataset_generates_on_first_use(tmp_path):
    root = str(tmp_path / 'caps')
    ds = SynthRefCaptionDataset(data_root=root, ann_file='annotations/captions_val.json',
                                data_prefix=dict(img='images/'), generate=dict(TINY, phrasings=['list', 'count']))
    assert len(ds) == 4
    infos = [ds.get_data_info(i) for i in range(4)]
    assert [i['img_id'] for i in infos] == [0, 0, 1, 1]
    assert infos[0]['text'].startswith('a ') and osp.isfile(infos[0]['img_path'])
    assert infos[0]['split'] == 'captions_val'
