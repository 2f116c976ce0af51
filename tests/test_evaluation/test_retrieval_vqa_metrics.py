"""Retrieval Recall@K on a hand-made similarity matrix, and VQA accuracy."""
import pytest
import torch

from mmvlg.evaluation.metrics import (
    RetrievalRecallMetric,
    VQAAccuracy,
    normalize_answer,
    retrieval_recall,
    vqa_accuracy,
)


def test_retrieval_recall_hand_made():
    # 3 images, 4 texts: texts 0, 1 describe image 0, text 2 image 1, text 3 image 2
    sim = torch.tensor([[0.9, 0.1, 0.5, 0.0],    # image 0: its best text (0) ranks 1st
                        [0.8, 0.7, 0.6, 0.1],    # image 1: its text (2) ranks 3rd
                        [0.2, 0.3, 0.4, 0.1]])   # image 2: its text (3) ranks 4th
    gt = [0, 0, 1, 2]
    r = retrieval_recall(sim, gt, topk=(1, 2, 3))
    assert r['text_R@1'] == pytest.approx(100 / 3) and r['text_R@2'] == pytest.approx(100 / 3)
    assert r['text_R@3'] == pytest.approx(200 / 3)
    # text queries (columns): text 0 -> image 0 rank 1; text 1 -> image 0 (0.1) rank 3; text 2 -> image 1 (0.6)
    # rank 1 (0.6 > 0.5, 0.4); text 3 -> image 2 (0.1) rank 1 (ties do not count against it: 0.1 vs 0.1, 0.0)
    assert r['image_R@1'] == 75 and r['image_R@2'] == 75 and r['image_R@3'] == 100
    assert r['R_mean'] == pytest.approx((100 / 3 + 100 / 3 + 200 / 3 + 75 + 75 + 100) / 6)
    perfect = retrieval_recall(torch.eye(3), [0, 1, 2], topk=(1, ))
    assert perfect == {'text_R@1': 100.0, 'image_R@1': 100.0, 'R_mean': 100.0}
    # a separate text-to-image score matrix (e.g. re-ranked) is used for image retrieval only
    r2 = retrieval_recall(sim, gt, t2i_scores=torch.eye(3, 4), topk=(1, ))
    # columns of eye(3, 4): texts 0 and 3 (all-zero column, a tie) hit, texts 1 and 2 prefer another image
    assert r2['text_R@1'] == r['text_R@1'] and r2['image_R@1'] == 50
    with pytest.raises(ValueError, match='do not match'):
        retrieval_recall(sim, [0, 1])


def test_retrieval_metric_from_embeddings():
    metric = RetrievalRecallMetric(topk=(1, 5))
    e = torch.eye(3)
    samples = [dict(img_id='a', text_id=0, img_embed=e[0], text_embed=e[0]),
               dict(img_id='a', text_id=1, img_embed=e[0], text_embed=e[1]),
               dict(img_id='b', text_id=2, img_embed=e[1], text_embed=e[1])]
    metric.process({}, samples)
    out = metric.compute_metrics(metric.results)
    # gallery: images a, b. text 1 (e1) scores image b highest: an image-retrieval miss at 1
    assert out['image_R@1'] == pytest.approx(200 / 3) and out['text_R@1'] == 100.0
    metric = RetrievalRecallMetric()
    metric.process({}, [dict(i2t_scores=torch.eye(2), t2i_scores=torch.eye(2), text_to_image=[0, 1])])
    assert metric.compute_metrics(metric.results)['R_mean'] == 100.0
    with pytest.raises(KeyError, match='dual encoder'):
        RetrievalRecallMetric().process({}, [dict(img_id=1)])


def test_vqa_accuracy():
    ten = ['two'] * 2 + ['2'] * 1 + ['three'] * 7
    # 'two' == '2': 3 matches of 10; leaving out one of them leaves 2 (2/3), any other leaves 3 (1)
    assert vqa_accuracy('2', ten) == pytest.approx((3 * 2 / 3 + 7) / 10)
    assert vqa_accuracy('three', ten) == 1.0
    assert vqa_accuracy('four', ten) == 0.0
    two = ['yes', 'yes'] + ['no'] * 8
    # leave-one-out: 2 subsets without one "yes" (1 match -> 1/3), 8 subsets with both (2/3)
    assert vqa_accuracy('Yes.', two) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    assert normalize_answer(' The Two dogs! ') == '2 dogs' and normalize_answer('1.5') == '1.5'
    metric = VQAAccuracy()
    metric.process({}, [dict(question_id=1, pred_answer='no', answers=two),
                        dict(question_id=2, pred_answer='three', answers=[dict(answer='three')] * 10)])
    assert metric.compute_metrics(metric.results)['accuracy'] == pytest.approx(50.0 + 50.0 * 1.0 * 1.0)


def test_vqa_accuracy_per_group():
    metric = VQAAccuracy(group_by=('answer_type', 'question_type'))
    yes, three, yn = ['yes'] * 10, ['3'] * 10, 'yes/no'
    metric.process({}, [dict(question_id=1, pred_answer='yes', answers=yes, answer_type=yn, question_type='exist'),
                        dict(question_id=2, pred_answer='no', answers=yes, answer_type=yn, question_type='exist'),
                        dict(question_id=3, pred_answer='3', answers=three, answer_type='number',
                             question_type='count'),
                        dict(question_id=4, pred_answer='3', answers=three)])
    m = metric.compute_metrics(metric.results)
    assert m['accuracy'] == pytest.approx(75.0)
    assert m['answer_type/yes/no'] == pytest.approx(50.0) and m['answer_type/number'] == pytest.approx(100.0)
    assert m['question_type/exist'] == pytest.approx(50.0) and m['question_type/count'] == pytest.approx(100.0)
    assert m['answer_type/unknown'] == pytest.approx(100.0)  # a sample without the key
    assert set(VQAAccuracy().compute_metrics(metric.results)) == {'accuracy'}


def test_every_metric_accepts_outfile_prefix(tmp_path):
    """Issue 15, Tools item 1: ``tools/test.py --out`` sets ``outfile_prefix`` on every evaluator."""
    from mmvlg.registry import METRICS
    for name, cls in METRICS.module_dict.items():
        assert cls(outfile_prefix=str(tmp_path / name)).outfile_prefix == str(tmp_path / name), name


def test_retrieval_metric_dumps_ranked_lists(tmp_path):
    """Issue 15, Tools item 1: the ranked lists per query (image ids per text, text ids per image), best first."""
    import json
    i2t = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.8, 0.7]], dtype=torch.float64)
    prefix = str(tmp_path / 'r')
    metric = RetrievalRecallMetric(topk=(1, ), outfile_prefix=prefix, dump_topk=2)
    metric.process(None, [dict(i2t_scores=i2t, t2i_scores=i2t, text_to_image=[0, 1, 1], img_ids=['a', 'b'],
                               text_ids=[10, 11, 12], texts=['x', 'y', 'z'])])
    metrics = metric.evaluate(1)
    with open(prefix + '.retrieval.json') as f:
        dumped = json.load(f)
    assert dumped['metrics']['R_mean'] == metrics['retrieval/R_mean']
    assert dumped['image_retrieval'][2] == dict(text_id=12, text='z', img_id='b', ranked_img_ids=['b', 'a'],
                                                scores=[0.7, 0.5])
    assert dumped['text_retrieval'][0]['ranked_text_ids'] == [10, 12]
    assert dumped['text_retrieval'][1] == dict(img_id='b', ranked_text_ids=[11, 12], scores=[0.8, 0.7])


def test_vqa_metric_dumps_vqa_v2_results(tmp_path):
    """Issue 15, Tools item 1: answers per question id in the VQA v2 results format; unanswered questions (a
    test-dev split) are written, not scored."""
    import json
    prefix = str(tmp_path / 'v')
    metric = VQAAccuracy(outfile_prefix=prefix)
    metric.process(None, [dict(question_id=torch.tensor(5), pred_answer='red', answers=['red']),
                          dict(question_id=6, pred_answer='two', answers=[])])
    assert metric.evaluate(2) == {'vqa/accuracy': 100.0}
    with open(prefix + '.vqa.json') as f:
        assert json.load(f) == [dict(question_id=5, answer='red'), dict(question_id=6, answer='two')]
    with pytest.raises(KeyError, match='needs "pred_answer" and "answers"'):
        VQAAccuracy().process(None, [dict(question_id=6, pred_answer='two', answers=[])])
