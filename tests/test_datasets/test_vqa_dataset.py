"""VQAv2Dataset: questions + annotations -> soft scores over the answer vocabulary, errors naming file and question
id, the answer-vocabulary builder and its tool."""
import importlib.util
import json

import pytest
from PIL import Image

from mmvlg.datasets import VQAv2Dataset, answer_soft_score, build_answer_list
from mmvlg.datasets.refexp import AnnotationError
from mmvlg.evaluation.metrics import vqa_accuracy
from mmvlg.testing._utils import REPO_ROOT

VOCAB = ['yes', 'no', '2', 'red', 'blue']


def _answers(*pairs):
    out = []
    for answer, n in pairs:
        out += [answer] * n
    return [dict(answer=a, answer_confidence='yes', answer_id=i + 1) for i, a in enumerate(out)]


def write_vqa(root, questions=None, annotations=None, images=(1, 2)):
    (root / 'images').mkdir(exist_ok=True)
    for i in images:
        Image.new('RGB', (8, 6)).save(root / 'images' / f'COCO_train2014_{i:012d}.jpg')
    questions = questions if questions is not None else [
        dict(question_id=10, image_id=1, question='Is it red?'),
        dict(question_id=11, image_id=1, question='How many dogs?'),
        dict(question_id=20, image_id=2, question='What is the cat holding?'),
    ]
    annotations = annotations if annotations is not None else [
        dict(question_id=10, image_id=1, answer_type='yes/no', question_type='is it',
             answers=_answers(('yes', 9), ('no', 1)), multiple_choice_answer='yes'),
        dict(question_id=11, image_id=1, answer_type='number',
             answers=_answers(('two', 2), ('2', 1), ('3', 7)), multiple_choice_answer='3'),
        dict(question_id=20, image_id=2, answers=_answers(('a toy', 10)), multiple_choice_answer='toy'),
    ]
    (root / 'q.json').write_text(json.dumps(dict(data_subtype='train2014', questions=questions)))
    (root / 'a.json').write_text(json.dumps(dict(annotations=annotations)))
    return root


def _dataset(root, **kwargs):
    kwargs.setdefault('answer_file', 'a.json')
    kwargs.setdefault('answer_list', VOCAB)
    return VQAv2Dataset(data_root=str(root), ann_file='q.json', data_prefix=dict(img='images/'), **kwargs)


def test_soft_scores_are_the_vqa_accuracy_of_the_answer():
    assert [round(answer_soft_score(c), 6) for c in range(6)] == [0, 0.3, 0.6, 0.9, 1, 1]  # the authors' get_score
    for c in range(11):
        gts = ['x'] * c + ['y'] * (10 - c)
        assert answer_soft_score(c) == pytest.approx(vqa_accuracy('x', gts))
    assert answer_soft_score(1, 1) == 1 and answer_soft_score(2, score_type='min3') == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match='score_type'):
        answer_soft_score(1, score_type='bleu')


def test_questions_answers_and_targets(tmp_path):
    ds = _dataset(write_vqa(tmp_path))
    assert len(ds) == 2  # question 20 has no answer in the vocabulary: dropped for training
    q10, q11 = ds.get_data_info(0), ds.get_data_info(1)
    assert q10['img_path'].endswith('images/COCO_train2014_000000000001.jpg') and q10['split'] == 'train2014'
    assert q10['text'] == 'Is it red?' and q10['question_id'] == 10 and q10['img_id'] == 1
    assert q10['answer_labels'] == [0, 1] and q10['answer_scores'] == pytest.approx([1.0, 0.3])
    assert q10['answers'][:2] == ['yes', 'yes'] and q10['answer_type'] == 'yes/no'
    # "two" and "2" are the same answer after normalization (3 annotators); "3" is not in the vocabulary
    assert q11['answer_labels'] == [2] and q11['answer_scores'] == pytest.approx([0.9])

    test = _dataset(tmp_path, test_mode=True)
    assert len(test) == 3 and test.get_data_info(2)['answer_labels'] == []
    no_answers = _dataset(tmp_path, answer_file=None, answer_list=None, test_mode=True)
    assert len(no_answers) == 3 and 'answers' not in no_answers.get_data_info(0)


@pytest.mark.parametrize('case, match', [
    ('no_question', 'question 10 has an empty'),
    ('dup', 'question 10 appears twice'),
    ('unknown', 'question 99 is not in the questions file'),
    ('image', 'question 10 has image id 2'),
    ('no_answers', 'question 11 has no "answers"'),
    ('missing', 'no annotation for question 20'),
    ('bad_answer', 'question 10 has an answer that is not a string'),
])
def test_bad_input_names_file_and_question(tmp_path, case, match):
    questions = [dict(question_id=10, image_id=1, question='Is it red?'),
                 dict(question_id=11, image_id=1, question='How many?'),
                 dict(question_id=20, image_id=2, question='What?')]
    anns = [dict(question_id=q['question_id'], image_id=q['image_id'], answers=_answers(('yes', 10)))
            for q in questions]
    if case == 'no_question':
        questions[0]['question'] = ' '
    elif case == 'dup':
        questions.append(dict(questions[0]))
    elif case == 'unknown':
        anns.append(dict(question_id=99, image_id=1, answers=_answers(('no', 10))))
    elif case == 'image':
        anns[0]['image_id'] = 2
    elif case == 'no_answers':
        anns[1]['answers'] = []
    elif case == 'missing':
        anns = anns[:2]
    elif case == 'bad_answer':
        anns[0]['answers'][3] = dict(answer=None)
    write_vqa(tmp_path, questions, anns)
    with pytest.raises(AnnotationError, match=match) as err:
        _dataset(tmp_path)
    assert 'q.json' in str(err.value) or 'a.json' in str(err.value)


def test_missing_files_images_and_vocabulary(tmp_path):
    write_vqa(tmp_path, images=(1, ))
    with pytest.raises(FileNotFoundError, match='question 20: image file'):
        _dataset(tmp_path)
    write_vqa(tmp_path)
    with pytest.raises(ValueError, match='answer_list'):
        _dataset(tmp_path, answer_list=None)
    (tmp_path / 'q.json').write_text('{"questions": [')
    with pytest.raises(AnnotationError, match='q.json: not a valid JSON'):
        _dataset(tmp_path)
    (tmp_path / 'q.json').write_text('[]')
    with pytest.raises(AnnotationError, match='"questions" list'):
        _dataset(tmp_path)


def test_answer_list_builder_and_tool(tmp_path):
    anns = [dict(question_id=i, image_id=0, multiple_choice_answer=a)
            for i, a in enumerate(['Yes', 'yes', 'yes', 'two', '2', 'red', 'blue.'])]
    (tmp_path / 'a.json').write_text(json.dumps(dict(annotations=anns)))
    assert build_answer_list([str(tmp_path / 'a.json')], min_count=1) == ['yes', '2', 'blue', 'red']
    assert build_answer_list([str(tmp_path / 'a.json')], min_count=2) == ['yes', '2']
    spec = importlib.util.spec_from_file_location(
        'vqav2_answer_list', f'{REPO_ROOT}/tools/dataset_converters/vqav2_answer_list.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main([str(tmp_path / 'a.json'), '--out', str(tmp_path / 'out' / 'answers.json'), '--min-count', '2'])
    assert json.loads((tmp_path / 'out' / 'answers.json').read_text()) == ['yes', '2']


def test_vqav2_reference_config():
    """The authors' VQA fine-tuning settings, and the same model at a tiny width runs a VQA loss."""
    import copy

    import torch

    from mmvlg.registry import MODELS
    from mmvlg.testing import demo_image_text_batch, get_config, tiny_fiber_backbone_config
    cfg = get_config('fiber/fiber-vqa_swin-b_roberta-base_8xb64-10e_vqav2.py')
    assert cfg.model.type == 'FIBERVQA' and cfg.model.backbone.num_fusion_layers == 6
    assert cfg.model.backbone.language_model.max_length == 50 and cfg.img_scale == (576, 576)
    opt = cfg.optim_wrapper
    assert opt.optimizer.lr == 2e-5 and opt.optimizer.weight_decay == 0.01
    keys = opt.paramwise_cfg.custom_keys
    assert keys['backbone.i2t_attns'].lr_mult == 5 and keys['vqa_head'].lr_mult == 50
    assert cfg.train_cfg.max_epochs == 10 and cfg.train_dataloader.dataset.type == 'VQAv2Dataset'
    assert cfg.train_dataloader.batch_size * 8 == 512 and cfg.val_evaluator.type == 'VQAAccuracy'
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone = tiny_fiber_backbone_config(out_indices=(3, ))
    model_cfg.embed_dims = 32
    model_cfg.vqa_head.answers = VOCAB
    model = MODELS.build(model_cfg)
    batch = demo_image_text_batch(texts=['is it red?', 'how many?'], answer_labels=[[0], [2]],
                                  answer_scores=[[1.0], [0.6]])
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert torch.isfinite(losses['loss_vqa'])
