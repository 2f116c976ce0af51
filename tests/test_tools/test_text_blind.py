"""Tests of tools/analysis_tools/synthref_text_blind.py."""
import importlib.util
import json
import os
import os.path as osp

import pytest

from mmvlg.testing import tiny_synthref

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'analysis_tools', 'synthref_text_blind.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('synthref_text_blind', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return tiny_synthref(str(tmp_path_factory.mktemp('sr') / 'sr'), num_scenes=8)


def test_numbers_on_tiny_synthref(root, capsys):
    assert tool.main([root]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].split() == ['policy', 'val', 'testA', 'testB']
    results = json.loads(out[-1])
    assert set(results) == {'num_expressions', 'random', 'text_blind', 'text_blind+distractors'}
    for policy in ('random', 'text_blind', 'text_blind+distractors'):
        for split in ('val', 'testA', 'testB'):
            assert 0.0 <= results[policy][split] <= 1.0
    # the random baseline is the mean over the expressions of 1 / (objects in the scene)
    for split in ('val', 'testA', 'testB'):
        with open(osp.join(root, 'annotations', f'finetune_synthref_{split}.json')) as f:
            images = json.load(f)['images']
        with open(osp.join(root, 'annotations', f'scenes_{split}.json')) as f:
            scenes = json.load(f)
        expected = sum(1 / len(scenes[str(im['original_id'])]) for im in images) / len(images)
        assert results['random'][split] == pytest.approx(expected)
        assert results['num_expressions'][split] == len(images)


def test_referred_object_is_found(root):
    for e in tool.load_split(root, 'val'):
        assert tool.box_iou(e['objects'][e['referred']]['bbox'], e['gt_bbox']) > 0.99
        assert sum(o['shape'] == e['objects'][e['referred']]['shape'] for o in e['objects']) >= 2


def write_split(root, split, scenes, referred):
    """Hand-made split: ``scenes`` is a list of object lists, ``referred`` the referred index per scene."""
    images, anns, records = [], [], {}
    for sid, (objs, r) in enumerate(zip(scenes, referred)):
        records[str(sid)] = objs
        x1, y1, x2, y2 = objs[r]['bbox']
        images.append(dict(id=sid, original_id=sid, width=64, height=64, caption='x', file_name='x.png'))
        anns.append(dict(id=sid, image_id=sid, bbox=[x1, y1, x2 - x1, y2 - y1]))
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    with open(osp.join(root, 'annotations', f'finetune_synthref_{split}.json'), 'w') as f:
        json.dump(dict(images=images, annotations=anns), f)
    with open(osp.join(root, 'annotations', f'scenes_{split}.json'), 'w') as f:
        json.dump(records, f)


def obj(shape, color, size, x):
    return dict(shape=shape, color=color, size=size, bbox=[x, 10, x + 8, 18])


def test_policy_learns_a_text_free_bias(tmp_path):
    """If the referred object is always the big red one, the text-blind policy is always right."""
    scenes = [[obj('circle', 'blue', 'small', 0), obj('circle', 'red', 'big', 20), obj('square', 'red', 'small', 40)],
              [obj('square', 'red', 'big', 0), obj('square', 'green', 'small', 20), obj('circle', 'red', 'small', 40),
               obj('circle', 'red', 'small', 50)]]
    for split in ('train', 'val'):
        write_split(str(tmp_path), split, scenes * 5, [1, 0] * 5)
    results = tool.evaluate(str(tmp_path), splits=('val', ))
    assert results['text_blind']['val'] == 1.0 and results['text_blind+distractors']['val'] == 1.0
    assert results['random']['val'] == pytest.approx((1 / 3 + 1 / 4) / 2)


def test_missing_scene_file(root, tmp_path, capsys):
    os.makedirs(tmp_path / 'annotations')
    with open(osp.join(root, 'annotations', 'finetune_synthref_train.json')) as f:
        (tmp_path / 'annotations' / 'finetune_synthref_train.json').write_text(f.read())
    assert tool.main([str(tmp_path)]) == 1
    assert 'scenes_train.json' in capsys.readouterr().err
