"""SynthRef VQA: correct answers, deterministic and atomic generation, loading through VQAv2Dataset, and the tiny
config's vocabularies."""
import filecmp
import json
import os

import numpy as np
import pytest

from mmvlg.datasets import SynthRefVQAConfig, SynthRefVQADataset, generate_synthref_vqa
from mmvlg.datasets.synthref import COLORS, SHAPES, SynthRefConfig, _place_objects
from mmvlg.datasets.synthref_vqa import QUESTION_TYPES, question_vocabulary, scene_questions, synthref_vqa_answers
from mmvlg.testing import get_config

GEN = dict(num_scenes=dict(train=6, val=3), questions_per_scene=4, image_size=64, seed=0)


def _check(objs, qtype, question, answer):
    words = question.rstrip('?').split()
    if qtype == 'count':
        assert answer == str(sum(o.shape + 's' == words[2] for o in objs))
    elif qtype == 'exist':
        color, shape = words[3], words[4]
        assert answer == ('yes' if any(o.color == color and o.shape == shape for o in objs) else 'no')
    elif qtype == 'color':
        desc = words[4:]
        match = [o for o in objs if o.shape == desc[-1] and (len(desc) == 1 or o.size == desc[0])]
        assert len(match) == 1 and match[0].color == answer
    elif qtype == 'shape':
        desc = words[4:-1]
        match = [o for o in objs if o.color == desc[-1] and (len(desc) == 1 or o.size == desc[0])]
        assert len(match) == 1 and match[0].shape == answer
    else:  # "what color is the circle left of the big green diamond": the target is named by its shape only
        assert words[4] in SHAPES and words[5] in ('left', 'right', 'above', 'below')
        assert answer in {o.color for o in objs if o.shape == words[4]}


def test_every_candidate_question_is_answered_correctly():
    cfg = SynthRefConfig(image_size=64, min_objects=3, max_objects=5)
    seen = set()
    for s in range(60):
        rng = np.random.default_rng([7, s])
        objs = _place_objects(rng, cfg)
        for qtype, pairs in scene_questions(objs, rng, 64).items():
            for question, answer in pairs:
                _check(objs, qtype, question, answer)
                assert answer in synthref_vqa_answers()
                assert set(question.replace('?', ' ?').split()) <= set(question_vocabulary())
                seen.add((qtype, answer if qtype == 'exist' else None))
    assert {t for t, _ in seen} == set(QUESTION_TYPES) and {('exist', 'yes'), ('exist', 'no')} <= seen


def test_generation_is_deterministic_and_atomic(tmp_path):
    a = generate_synthref_vqa(str(tmp_path / 'a'), SynthRefVQAConfig(**GEN))
    b = generate_synthref_vqa(str(tmp_path / 'b'), SynthRefVQAConfig(**GEN))
    for rel in ('annotations/questions_train.json', 'annotations/answers_val.json', 'images/train/000005.png',
                'answer_list.txt', 'vocab.txt', 'meta.json'):
        assert filecmp.cmp(os.path.join(a, rel), os.path.join(b, rel), shallow=False), rel
    assert sorted(os.listdir(tmp_path)) == ['a', 'b']  # no temporary folder left
    mtime = os.path.getmtime(os.path.join(a, 'meta.json'))
    generate_synthref_vqa(a, SynthRefVQAConfig(**GEN))  # same arguments: nothing rewritten
    assert os.path.getmtime(os.path.join(a, 'meta.json')) == mtime
    with pytest.raises(FileExistsError, match='other arguments'):
        generate_synthref_vqa(a, SynthRefVQAConfig(**dict(GEN, seed=1)))
    with pytest.raises(ValueError, match='question_types'):
        generate_synthref_vqa(str(tmp_path / 'c'), SynthRefVQAConfig(**dict(GEN, question_types=('why', ))))
    questions = json.load(open(os.path.join(a, 'annotations/questions_train.json')))
    answers = json.load(open(os.path.join(a, 'annotations/answers_train.json')))
    assert questions['data_subtype'] == 'train' and len(questions['questions']) == len(answers['annotations'])
    assert all(len(ann['answers']) == 10 for ann in answers['annotations'])


def test_dataset_loads_with_full_soft_scores(tmp_path):
    ds = SynthRefVQADataset(data_root=str(tmp_path / 'vqa'), ann_file='annotations/questions_train.json',
                            answer_file='annotations/answers_train.json', data_prefix=dict(img='images/'),
                            generate=GEN)
    assert 6 <= len(ds) <= 24
    vocab = synthref_vqa_answers()
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert os.path.isfile(info['img_path']) and info['text'].endswith('?')
        assert len(info['answer_labels']) == 1 and info['answer_scores'] == [1.0]
        assert vocab[info['answer_labels'][0]] == info['answers'][0]


def test_tiny_config_vocabularies():
    cfg = get_config('fiber/fiber-vqa_swin-nano_roberta-tiny_1xb32-2k_synthref-vqa.py')
    assert cfg.question_vocab == question_vocabulary()
    assert cfg.answers == synthref_vqa_answers() and cfg.model.vqa_head.answers == cfg.answers
    assert set(COLORS) <= set(cfg.answers)
