"""RetrievalRecallMetric(num_folds=...): COCO's 1k test, the gallery in consecutive folds ranked on their own and
the recalls averaged, on a hand-made score matrix whose fold figures differ from the whole gallery's."""
import json

import pytest
import torch

from mmvlg.evaluation.metrics.retrieval_metric import (
    RetrievalRecallMetric,
    gallery_folds,
    retrieval_recall,
    retrieval_recall_folds,
)

# 4 images (folds {0, 1} and {2, 3}), 5 texts: t0 -> img0, t1 -> img1, t2 -> img2, t3 -> img3, t4 -> img2.
# Image 0 scores t2 (another fold's text) above its own t0, and text t2 scores image 0 above its own image 2:
# misses on the whole gallery, hits inside the folds. Image 3 prefers t2 and t3 prefers image 2: misses either way.
SCORES = torch.tensor([
    [0.8, 0.1, 0.9, 0.0, 0.0],
    [0.2, 0.7, 0.0, 0.0, 0.0],
    [0.0, 0.0, 0.6, 0.5, 0.1],
    [0.0, 0.0, 0.4, 0.3, 0.1],
])
TEXT_TO_IMAGE = [0, 1, 2, 3, 2]


def test_folds_of_the_gallery_with_their_captions():
    (rows_a, cols_a), (rows_b, cols_b) = gallery_folds(4, TEXT_TO_IMAGE, 2)
    assert rows_a.tolist() == [0, 1] and cols_a.tolist() == [0, 1]
    assert rows_b.tolist() == [2, 3] and cols_b.tolist() == [2, 3, 4]
    with pytest.raises(ValueError, match='num_folds=3'):
        gallery_folds(4, TEXT_TO_IMAGE, 3)


def test_fold_means_differ_from_the_whole_gallery_by_hand():
    full = retrieval_recall(SCORES, TEXT_TO_IMAGE, topk=(1, 2))
    assert full == pytest.approx({'text_R@1': 50.0, 'text_R@2': 100.0, 'image_R@1': 60.0, 'image_R@2': 100.0,
                                  'R_mean': 77.5})
    mean, per_fold = retrieval_recall_folds(SCORES, TEXT_TO_IMAGE, topk=(1, 2), num_folds=2)
    assert per_fold[0] == pytest.approx({'text_R@1': 100.0, 'text_R@2': 100.0, 'image_R@1': 100.0,
                                         'image_R@2': 100.0, 'R_mean': 100.0})
    # fold 2: image 2 hits, image 3 misses; t2 and t4 hit, t3 misses
    assert per_fold[1] == pytest.approx({'text_R@1': 50.0, 'text_R@2': 100.0, 'image_R@1': 200.0 / 3,
                                         'image_R@2': 100.0, 'R_mean': (50 + 100 + 200 / 3 + 100) / 4})
    assert mean == pytest.approx({'text_R@1': 75.0, 'text_R@2': 100.0, 'image_R@1': (100 + 200 / 3) / 2,
                                  'image_R@2': 100.0, 'R_mean': (100 + (50 + 100 + 200 / 3 + 100) / 4) / 2})
    one, _ = retrieval_recall_folds(SCORES, TEXT_TO_IMAGE, topk=(1, 2), num_folds=1)
    assert one == pytest.approx(full)


def test_metric_with_folds_and_its_own_prefix(tmp_path):
    sample = dict(i2t_scores=SCORES, t2i_scores=SCORES, text_to_image=TEXT_TO_IMAGE,
                  img_ids=['a', 'b', 'c', 'd'], text_ids=[10, 11, 12, 13, 14], texts=list('vwxyz'))
    whole = RetrievalRecallMetric(topk=(1, 2))
    whole.process(None, [sample])
    folds = RetrievalRecallMetric(topk=(1, 2), num_folds=2, prefix='retrieval_1k',
                                  outfile_prefix=str(tmp_path / 'out'))
    folds.process(None, [sample])
    got, got_folds = whole.evaluate(1), folds.evaluate(1)
    assert got['retrieval/text_R@1'] == pytest.approx(50.0)
    assert got_folds['retrieval_1k/text_R@1'] == pytest.approx(75.0)
    assert not set(got) & set(got_folds)  # the two reports side by side
    dumped = json.loads((tmp_path / 'out.retrieval_2folds.json').read_text())
    assert len(dumped['folds']) == 2 and dumped['metrics']['text_R@1'] == pytest.approx(75.0)
    second = dumped['fold_lists'][1]
    assert [e['text_id'] for e in second['image_retrieval']] == [12, 13, 14]
    assert second['image_retrieval'][2]['img_id'] == 'c' and second['image_retrieval'][2]['text'] == 'z'
    assert second['text_retrieval'][1] == dict(img_id='d', ranked_text_ids=[12, 13, 14],
                                               scores=pytest.approx([0.4, 0.3, 0.1]))
    with pytest.raises(ValueError, match='num_folds'):
        RetrievalRecallMetric(num_folds=0)


def test_soho_coco_config_reports_the_5k_and_the_1k_test():
    """The SOHO COCO retrieval config's test evaluator: the whole gallery and its five folds, distinct keys (here on
    a random 10-image gallery, two per fold)."""
    import os.path as osp

    from mmengine.config import Config
    from mmengine.evaluator import Evaluator

    from mmvlg.utils import register_all_modules
    register_all_modules()
    root = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'soho')
    cfg = Config.fromfile(osp.join(root, 'soho-retrieval_r101_bert-base_8xb24-20e_coco.py'))
    evaluator = Evaluator(cfg.test_evaluator)
    torch.manual_seed(0)
    scores = torch.randn(10, 50)
    gt = torch.arange(10).repeat_interleave(5).tolist()
    evaluator.process(data_samples=[dict(i2t_scores=scores, t2i_scores=scores, text_to_image=gt)])
    got = evaluator.evaluate(1)
    mean, _ = retrieval_recall_folds(scores, gt, topk=(1, 5, 10), num_folds=5)
    assert got['retrieval/R_mean'] == pytest.approx(retrieval_recall(scores, gt)['R_mean'])
    assert got['retrieval_1k/R_mean'] == pytest.approx(mean['R_mean'])
    assert got['retrieval_1k/R_mean'] != pytest.approx(got['retrieval/R_mean'])
