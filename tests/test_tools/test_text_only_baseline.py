"""Tests of tools/analysis_tools/text_only_baseline.py (question-only baselines of VQA-style sets)."""
import importlib.util
import json
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'analysis_tools', 'text_only_baseline.py')
VQA_CONFIG = osp.join(REPO, 'configs', 'fiber', 'fiber-vqa_swin-nano_roberta-tiny_1xb32-2k_synthref-vqa.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('text_only_baseline', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()
Sample = tool.Sample


def vqa(text, answer, qtype='t', n=10):
    return Sample(text, answers=[answer] * n, groups=dict(question_type=qtype))


def test_most_frequent_answer_per_question_then_prefix_then_prior():
    train = [vqa('What color is the circle?', 'red'), vqa('what color is the circle', 'red'),
             vqa('What color is the circle?', 'blue'),
             vqa('how many squares are there?', '2', 'count'), vqa('how many circles are there?', '3', 'count'),
             vqa('how many circles are there?', '3', 'count'), vqa('is there a cat?', 'yes', 'exist'),
             vqa('is there a dog?', 'yes', 'exist'), vqa('is there a cow?', 'no', 'exist')]
    policy = tool.QuestionOnlyPolicy(train, prefix_words=3)
    assert policy('what color is the circle') == ('red', 'text')  # punctuation and case normalized
    assert policy(tool.normalize_text('How many circles are there?')) == ('3', 'text')
    assert policy('how many triangles are there?') == (policy.prior, 'prior')  # 'how many triangles': unseen
    assert tool.QuestionOnlyPolicy(train, prefix_words=2)('how many triangles are there?') == ('3', 'prefix')
    assert policy(tool.normalize_text('is there a pig?'))[1] == 'prefix'
    assert policy(tool.normalize_text('is there a pig?'))[0] == 'yes'
    assert policy(tool.normalize_text('why?')) == (policy.prior, 'prior')
    assert policy.prior in ('3', 'red', 'yes')


def test_scores_per_group_with_vqa_accuracy():
    train = [vqa('what color is the circle?', 'red', 'color'), vqa('what color is the circle?', 'red', 'color'),
             vqa('how many circles?', '2', 'count')]
    # 10 annotators: 4 say red (accuracy 1), 2 say red (accuracy 0.6 under the leave-one-out rule)
    test = [Sample('what color is the circle?', answers=['red'] * 4 + ['blue'] * 6, groups=dict(question_type='color')),
            Sample('what color is the circle?', answers=['red'] * 2 + ['blue'] * 8, groups=dict(question_type='color')),
            Sample('how many circles?', answers=['3'] * 10, groups=dict(question_type='count'))]
    out = tool.evaluate(train, test)
    assert out['metric'] == 'vqa_accuracy'
    assert out['question_only']['question_type/color'] == pytest.approx(100 * (1 + 0.6) / 2)
    assert out['question_only']['question_type/count'] == 0.0
    assert out['question_only']['overall'] == pytest.approx(100 * 1.6 / 3, abs=0.01)
    assert out['group_sizes'] == {'overall': 3, 'question_type/color': 2, 'question_type/count': 1}
    assert list(out['question_only'])[0] == 'overall'


def test_labels_statements_and_errors():
    train = [Sample('the left image has two dogs', label=True), Sample('the left image has two dogs', label=True),
             Sample('the left image has two dogs', label=False), Sample('there are cats', label=False)]
    test = [Sample('the left image has two dogs', label=True), Sample('there are cats', label=True)]
    out = tool.evaluate(train, test)
    assert out['metric'] == 'accuracy' and out['question_only']['overall'] == 50.0
    with pytest.raises(ValueError, match='mix'):
        tool.evaluate(train, [vqa('q', 'a')])
    with pytest.raises(KeyError, match='no target'):
        tool.sample_from_info(dict(text='q', img_id=3), 'file.json, sample 3')
    with pytest.raises(KeyError, match='no text'):
        tool.sample_from_info(dict(answers=['a']), 'file.json, sample 3')
    s = tool.sample_from_info(dict(text='q?', answers=[dict(answer='x')] * 3, question_type='count'), 'f')
    assert s.answers == ['x'] * 3 and s.groups == dict(question_type='count')


def test_on_the_synthref_vqa_config(tmp_path, capsys):
    """The tool reads the data sets of a real config (SynthRef VQA, generated small here) through the datasets."""
    root = str(tmp_path / 'sr_vqa') + '/'
    opts = []
    for loader in ('train_dataloader', 'val_dataloader'):
        opts += [f'{loader}.dataset.data_root={root}', f'{loader}.dataset.generate.num_scenes.train=30',
                 f'{loader}.dataset.generate.num_scenes.val=10', f'{loader}.dataset.generate.image_size=32']
    out_file = str(tmp_path / 'baseline.json')
    assert tool.main([VQA_CONFIG, '--json-out', out_file, '--cfg-options'] + opts) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith('| group | samples |') for line in printed)
    results = json.loads(printed[-1])
    assert results == json.load(open(out_file))
    assert results['num_train'] > 60 and results['num_test'] > 20
    types = {k.split('/', 1)[1] for k in results['question_only'] if k.startswith('question_type/')}
    assert types == {'count', 'exist', 'color', 'relation_color', 'shape'}
    assert 0.0 <= results['question_only']['overall'] <= 100.0
    # every evaluation question was answered at some level
    assert sum(results['backoff'].values()) == results['num_test']
