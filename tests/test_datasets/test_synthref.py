"""Tests of the SynthRef generator (mmvlg/datasets/synthetic/synthref.py; mmvlg.datasets.synthref is its old path)."""
import filecmp
import json
import os
import os.path as osp

import pytest

from mmvlg.datasets.synthetic import scenes
from mmvlg.datasets.synthref import (
    FORMAT_VERSION,
    SHAPES,
    SPLIT_KINDS,
    SynthRefConfig,
    caption_words,
    generate_synthref,
    vocabulary,
)
from mmvlg.datasets.transforms import replace_words_keep_spans

SPLITS = ('train', 'val', 'testA', 'testB')


def tiny_cfg(seed: int = 0, **kwargs) -> SynthRefConfig:
    return SynthRefConfig(num_scenes=dict(train=6, val=4, testA=4, testB=4), image_size=48, seed=seed, **kwargs)


@pytest.fixture(scope='module')
def root(tmp_path_factory) -> str:
    return generate_synthref(str(tmp_path_factory.mktemp('sr') / 'a'), tiny_cfg())


def load(root: str, name: str) -> dict:
    with open(osp.join(root, 'annotations', name)) as f:
        return json.load(f)


def all_files(root: str):
    return sorted(osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_layout(root):
    files = all_files(root)
    for split in SPLITS:
        assert f'annotations/finetune_synthref_{split}.json' in files
        assert f'annotations/scenes_{split}.json' in files
        assert f'images/{split}/000000.png' in files
    with open(osp.join(root, 'meta.json')) as f:
        assert json.load(f)['version'] == FORMAT_VERSION


def test_deterministic(root, tmp_path):
    again = generate_synthref(str(tmp_path / 'b'), tiny_cfg())
    assert all_files(root) == all_files(again)
    for rel in all_files(root):  # identical JSON and identical image bytes
        assert filecmp.cmp(osp.join(root, rel), osp.join(again, rel), shallow=False), rel


def test_other_seed_differs(root, tmp_path):
    other = generate_synthref(str(tmp_path / 'c'), tiny_cfg(seed=1))
    assert load(root, 'finetune_synthref_train.json') != load(other, 'finetune_synthref_train.json')
    with open(osp.join(root, 'images/train/000000.png'), 'rb') as f1, \
            open(osp.join(other, 'images/train/000000.png'), 'rb') as f2:
        assert f1.read() != f2.read()


def test_captions_use_the_vocabulary(root):
    vocab = set(vocabulary())
    for split in SPLITS:
        for img in load(root, f'finetune_synthref_{split}.json')['images']:
            assert set(caption_words(img['caption'])) <= vocab, img['caption']
            flipped, _ = replace_words_keep_spans(img['caption'], [], {'left': 'right', 'right': 'left'})
            assert set(caption_words(flipped)) <= vocab, flipped


def test_tokens_positive_name_the_referred_category(root):
    for split in SPLITS:
        data = load(root, f'finetune_synthref_{split}.json')
        for img, ann in zip(data['images'], data['annotations']):
            assert ann['image_id'] == img['id']
            (s, e), = ann['tokens_positive']
            phrase = img['caption'][s:e]
            assert phrase.startswith('the ') and phrase.split()[-1] == SHAPES[ann['category_id'] - 1]


def _box_xyxy(ann: dict):
    x, y, w, h = ann['bbox']
    return [x, y, x + w, y + h]


def test_referred_object_has_a_same_category_distractor(root):
    for split in SPLITS:
        data = load(root, f'finetune_synthref_{split}.json')
        scenes = load(root, f'scenes_{split}.json')
        assert sorted(map(int, scenes)) == sorted({img['original_id'] for img in data['images']})
        for img, ann in zip(data['images'], data['annotations']):
            objs = scenes[str(img['original_id'])]
            assert 3 <= len(objs) <= 6
            box = _box_xyxy(ann)
            matches = [o for o in objs if max(abs(a - b) for a, b in zip(o['bbox'], box)) < 0.02]
            assert len(matches) == 1, (split, img['id'])
            referred = matches[0]
            assert referred['shape'] == SHAPES[ann['category_id'] - 1]
            assert sum(o['shape'] == referred['shape'] for o in objs) >= 2, (split, img['id'])


def test_expression_kinds_per_split(root):
    for split in SPLITS:
        kinds = {img['expression_kind'] for img in load(root, f'finetune_synthref_{split}.json')['images']}
        assert kinds <= set(SPLIT_KINDS[split]), (split, kinds)
    assert {img['expression_kind'] for img in load(root, 'finetune_synthref_testA.json')['images']} <= {
        'attribute', 'extreme'}
    assert {img['expression_kind'] for img in load(root, 'finetune_synthref_testB.json')['images']} == {'relation'}


def test_cache_reuse_and_stale_cache(root, tmp_path):
    path = str(tmp_path / 'd')
    generate_synthref(path, tiny_cfg())
    stamp = os.stat(osp.join(path, 'meta.json')).st_mtime_ns
    assert generate_synthref(path, tiny_cfg()) == path  # identical arguments: reused, not rewritten
    assert os.stat(osp.join(path, 'meta.json')).st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match='other arguments'):
        generate_synthref(path, tiny_cfg(seed=3))
    generate_synthref(path, tiny_cfg(seed=3), force=True)
    with open(osp.join(path, 'meta.json')) as f:
        assert json.load(f)['seed'] == 3


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    real = scenes.draw_scene

    def failing_draw(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt('simulated interruption')
        return real(*args, **kwargs)

    monkeypatch.setattr(scenes, 'draw_scene', failing_draw)
    with pytest.raises(KeyboardInterrupt):
        generate_synthref(str(tmp_path / 'e'), tiny_cfg())
    assert os.listdir(tmp_path) == []  # neither the root nor the temporary folder

    # an existing copy survives an interrupted forced regeneration
    monkeypatch.setattr(scenes, 'draw_scene', real)
    generate_synthref(str(tmp_path / 'e'), tiny_cfg())
    before = all_files(str(tmp_path / 'e'))
    calls.clear()
    monkeypatch.setattr(scenes, 'draw_scene', failing_draw)
    with pytest.raises(KeyboardInterrupt):
        generate_synthref(str(tmp_path / 'e'), tiny_cfg(seed=9), force=True)
    assert os.listdir(tmp_path) == ['e'] and all_files(str(tmp_path / 'e')) == before
