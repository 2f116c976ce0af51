"""SynthRef NLVR2: determinism, statements true to their scenes, balanced labels (text-blind baselines ~50%)."""
import filecmp
import json
import re

import pytest

from mmvlg.datasets import nlvr2_collate
from mmvlg.datasets.synthetic import SynthRefNLVR2Config, SynthRefNLVR2Dataset, generate_synthref_nlvr2
from mmvlg.datasets.synthetic.nlvr2 import TEMPLATES, majority_baseline, statement_vocabulary
from mmvlg.datasets.synthetic.synthref import caption_words
from mmvlg.utils import register_all_modules

register_all_modules()

GEN = dict(num_pairs=dict(train=300, val=100), image_size=32)


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp('nlvr2')
    a = generate_synthref_nlvr2(str(root / 'a'), SynthRefNLVR2Config(**GEN))
    b = generate_synthref_nlvr2(str(root / 'b'), SynthRefNLVR2Config(**GEN))
    return a, b


def load(root, split):
    with open(f'{root}/annotations/nlvr2_{split}.json') as f:
        return json.load(f)


def test_deterministic(generated):
    a, b = generated
    for f in ('annotations/nlvr2_train.json', 'annotations/scenes_val.json', 'images/train/000007.png'):
        assert filecmp.cmp(f'{a}/{f}', f'{b}/{f}', shallow=False)


def test_statements_are_true_to_the_scenes(generated):
    root = generated[0]
    entries = load(root, 'train')
    with open(f'{root}/annotations/scenes_train.json') as f:
        scenes = json.load(f)
    vocab = set(statement_vocabulary())
    checked = 0
    for e in entries:
        assert set(caption_words(e['sentence'])) <= vocab and e['template'] in TEMPLATES
        left, right = (scenes[str(int(p.split('/')[1][:6]))] for p in e['images'])
        assert int(e['images'][1].split('/')[1][:6]) == int(e['images'][0].split('/')[1][:6]) + 1
        m = re.fullmatch(r'the left image has (more|fewer) (\w+)s than the right image', e['sentence'])
        if m:
            cl, cr = (sum(o['shape'] == m.group(2) for o in objs) for objs in (left, right))
            assert (cl > cr if m.group(1) == 'more' else cl < cr) == (e['label'] == 'True')
            checked += 1
        m = re.fullmatch(r'both images contain a (\w+) object', e['sentence'])
        if m:
            truth = all(any(o['color'] == m.group(1) for o in objs) for objs in (left, right))
            assert truth == (e['label'] == 'True')
            checked += 1
    assert checked > 20


def test_balanced_and_text_blind_baselines_near_chance(generated):
    train, val = load(generated[0], 'train'), load(generated[0], 'val')
    assert len(train) == 600 and len(val) == 200
    for t in TEMPLATES:
        labels = [e['label'] == 'True' for e in train if e['template'] == t]
        assert len(labels) > 20 and abs(sum(labels) - len(labels) / 2) <= 1, t
    assert abs(majority_baseline(train, train, 'template') - 0.5) < 0.02
    assert abs(majority_baseline(train, val, 'template') - 0.5) < 0.1
    assert majority_baseline(train, val, 'sentence') < 0.65  # even the exact statement tells little


def test_dataset_and_pipeline(generated):
    root = generated[0]
    pipeline = [dict(type='ApplyToImagePair', transforms=[dict(type='LoadImageFromFile'),
                                                          dict(type='mmdet.Resize', scale=(16, 16))]),
                dict(type='PackNLVR2Inputs')]
    ds = SynthRefNLVR2Dataset(data_root=root, ann_file='annotations/nlvr2_val.json', data_prefix=dict(img='images/'),
                              generate=GEN, pipeline=pipeline)
    assert len(ds) == 200 and ds.get_data_info(0)['template'] in TEMPLATES
    batch = nlvr2_collate([ds[0], ds[1]])
    assert [tuple(t.shape) for t in batch['inputs']] == [(3, 16, 16)] * 4
    assert batch['data_samples'][0].text == ds.get_data_info(0)['text']
