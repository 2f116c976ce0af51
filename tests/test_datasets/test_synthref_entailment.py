"""SynthRef entailment: deterministic, atomic generation; every label right against its scene (the drawn objects
and the cover, checked on the pixels too); the three labels balanced per template and per hypothesis so that the
hypothesis-only baseline stays at chance; the data set class and the text-only baseline tool on the tiny config."""
import collections
import hashlib
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmvlg.datasets.synthetic import SynthRefEntailmentConfig, SynthRefEntailmentDataset, generate_synthref_entailment
from mmvlg.datasets.synthetic.entailment import COVER_COLOR, TEMPLATES, hypothesis_vocabulary, scene_hypotheses
from mmvlg.datasets.synthetic.scenes import SceneObject
from mmvlg.testing._utils import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, 'configs', 'soho', 'soho-ve_r18-tiny_bert-tiny_1xb32-2k_synthref-ve.py')


def _cfg(n_train=150, n_val=40, size=32, **kw):
    return SynthRefEntailmentConfig(num_scenes=dict(train=n_train, val=n_val), image_size=size, **kw)


def _digest(root):
    h = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = osp.join(folder, name)
            h.update(osp.relpath(path, root).encode())
            h.update(open(path, 'rb').read())
    return h.hexdigest()


def _lines(root, split):
    return [json.loads(line) for line in open(osp.join(root, 'annotations', f've_{split}.jsonl'))]


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('ve') / 'set')
    generate_synthref_entailment(root, _cfg())
    return root


def test_deterministic_and_written_once(generated, tmp_path):
    other = str(tmp_path / 'again')
    generate_synthref_entailment(other, _cfg())
    assert _digest(other) == _digest(generated)
    stamp = os.path.getmtime(osp.join(other, 'meta.json'))
    generate_synthref_entailment(other, _cfg())  # an identical copy is kept
    assert os.path.getmtime(osp.join(other, 'meta.json')) == stamp
    with pytest.raises(FileExistsError):
        generate_synthref_entailment(other, _cfg(seed=1))
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.synthref-ve-')]  # no temporary left
    third = str(tmp_path / 'seed1')
    generate_synthref_entailment(third, _cfg(seed=1))
    assert _lines(third, 'train') != _lines(generated, 'train')


def _objects(records):
    return [SceneObject(r['shape'], r['color'], r['size'], (r['bbox'][0] + r['bbox'][2]) / 2,
                        (r['bbox'][1] + r['bbox'][3]) / 2, (r['bbox'][2] - r['bbox'][0]) / 2) for r in records]


def _count(objs, **attrs):
    return sum(all(getattr(o, k) == v for k, v in attrs.items()) for o in objs)


def test_labels_are_right_against_the_scene(generated):
    words = set(hypothesis_vocabulary())
    for split in ('train', 'val'):
        scenes = json.load(open(osp.join(generated, 'annotations', f'scenes_{split}.json')))
        for line in _lines(generated, split):
            scene = scenes[line['pairID'].split('-')[1]]
            objs, cover = _objects(scene['objects']), scene['cover']
            assert (line['sentence2'], line['gold_label']) in scene_hypotheses(objs, cover is not None)[
                line['hypothesis_type']]
            assert set(line['sentence2'].split()) <= words
            # the pixels: the cover is drawn, no object touches it
            img = np.asarray(Image.open(osp.join(generated, 'images', line['Flikr30kID'])))
            if cover is not None:
                x1, y1, x2, y2 = (int(v) for v in cover)
                assert (img[y1:y2, x1:x2] == COVER_COLOR).all()
                for o in objs:
                    b = o.box
                    assert b[2] < cover[0] or b[0] > cover[2] or b[3] < cover[1] or b[1] > cover[3]


def test_the_label_rules_on_a_hand_made_scene():
    objs = [SceneObject('circle', 'red', 'big', 10, 10, 4), SceneObject('circle', 'red', 'small', 30, 10, 3),
            SceneObject('square', 'blue', 'small', 10, 30, 3)]
    for covered, expected in (
            (False, {'there is a red circle': 'entailment', 'there is a green circle': 'contradiction',
                     'there is no green circle': 'entailment', 'there is no blue square': 'contradiction',
                     'there are exactly two red circles': 'entailment',
                     'there is exactly one red circle': 'contradiction',
                     'there are exactly three circles': 'contradiction', 'there are exactly two circles': 'entailment',
                     'there are at least two circles': 'entailment',
                     'there are at least two squares': 'contradiction'}),
            (True, {'there is a red circle': 'entailment', 'there is a green circle': 'neutral',
                    'there is no green circle': 'neutral', 'there is no blue square': 'contradiction',
                    'there are exactly two red circles': 'neutral', 'there is exactly one red circle': 'contradiction',
                    'there are exactly three circles': 'neutral', 'there is exactly one circle': 'contradiction',
                    'there are at least two circles': 'entailment', 'there are at least two squares': 'neutral'})):
        found = {text: label for pairs in scene_hypotheses(objs, covered).values() for text, label in pairs}
        for text, label in expected.items():
            assert found[text] == label, (covered, text)
    assert _count(objs, shape='circle', color='red') == 2


def test_labels_balanced_and_the_hypothesis_alone_is_at_chance(tmp_path):
    root = str(tmp_path / 'big')
    generate_synthref_entailment(root, _cfg(n_train=900, n_val=300, size=16))
    train, val = _lines(root, 'train'), _lines(root, 'val')
    per_template = collections.Counter((e['hypothesis_type'], e['gold_label']) for e in train)
    for t in TEMPLATES:
        counts = [per_template[(t, lb)] for lb in ('entailment', 'neutral', 'contradiction')]
        assert min(counts) > 0 and max(counts) - min(counts) <= 1, (t, counts)
    per_text = collections.defaultdict(collections.Counter)
    for e in train:
        per_text[e['sentence2']][e['gold_label']] += 1
    for text, c in per_text.items():  # no text is ahead on a label by more than one
        assert max(c.values()) - min(c.get(lb, 0) for lb in ('entailment', 'neutral', 'contradiction')) <= 1, text
    spec = importlib.util.spec_from_file_location('tob', osp.join(REPO_ROOT, 'tools', 'analysis_tools',
                                                                  'text_only_baseline.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)

    def sample(e):
        return tool.Sample(e['sentence2'], label=e['gold_label'], groups=dict(hypothesis_type=e['hypothesis_type']))

    out = tool.evaluate([sample(e) for e in train], [sample(e) for e in val])
    assert out['question_only']['overall'] < 42.0 and out['prior']['overall'] < 38.0


def test_dataset_class_and_the_baseline_tool_on_the_tiny_config(tmp_path, capsys):
    from mmengine.config import Config

    from mmvlg.datasets.synthetic.captions import caption_vocabulary
    cfg = Config.fromfile(CONFIG)
    assert cfg.ve_vocab == sorted(set(caption_vocabulary()) | set(hypothesis_vocabulary()))
    root = str(tmp_path / 've') + '/'
    ds = SynthRefEntailmentDataset(data_root=root, ann_file='annotations/ve_val.jsonl',
                                   data_prefix=dict(img='images/'), pipeline=[],
                                   generate=dict(num_scenes=dict(train=20, val=10), image_size=16))
    info = ds.get_data_info(0)
    assert info['label'] in (0, 1, 2) and info['hypothesis_type'] in TEMPLATES and osp.isfile(info['img_path'])
    spec = importlib.util.spec_from_file_location('tob2', osp.join(REPO_ROOT, 'tools', 'analysis_tools',
                                                                   'text_only_baseline.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    opts = []
    for loader in ('train_dataloader', 'val_dataloader'):
        opts += [f'{loader}.dataset.data_root={root}', f'{loader}.dataset.generate.num_scenes.train=20',
                 f'{loader}.dataset.generate.num_scenes.val=10', f'{loader}.dataset.generate.image_size=16']
    assert tool.main([CONFIG, '--cfg-options'] + opts) == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert results['metric'] == 'accuracy' and results['num_test'] == len(ds)
    assert {k.split('/', 1)[1] for k in results['question_only'] if k != 'overall'} <= set(TEMPLATES)
    assert any(k.startswith('hypothesis_type/') for k in results['question_only'])
