"""Tests of RefExpMetric (mmvlg/evaluation/metrics/refexp_metric.py)."""
import json

import numpy as np
import pytest
import torch

from mmvlg.evaluation.metrics import RefExpMetric

GT = [10., 10., 30., 30.]
HIT = [11., 11., 30., 30.]  # IoU 361/400 with GT
MISS = [40., 40., 60., 60.]


def sample(img_id, split, hit_rank=None, n=12, gt=GT):
    """A data sample (dict, as the evaluator passes it) whose ``n`` predictions miss except at ``hit_rank``."""
    boxes = [HIT if r == hit_rank else MISS for r in range(n)]
    return dict(img_id=img_id, split=split, text=f'expression {img_id}', img_path=f'{img_id}.png',
                ori_gt_bboxes=np.array([gt], np.float32),
                pred_instances=dict(bboxes=torch.tensor(boxes), scores=torch.linspace(1, 0.1, n)))


def samples():
    # split a: ranks 0, 3, none -> Prec@1 1/3, @5 2/3, @10 2/3; split b: ranks 0, 7 -> 1/2, 1/2, 1
    return [sample(0, 'a', 0), sample(1, 'a', 3), sample(2, 'a', None), sample(3, 'b', 0), sample(4, 'b', 7)]


def evaluate(metric, data):
    metric.process({}, data)
    return metric.evaluate(len(data))


def test_known_precisions_per_split():
    res = evaluate(RefExpMetric(), samples())
    # in percent, like every mmvlg metric (issue 15, Tools item 6)
    expected = {'refexp/Prec@1': 2 / 5, 'refexp/Prec@5': 3 / 5, 'refexp/Prec@10': 4 / 5,
                'refexp/a_Prec@1': 1 / 3, 'refexp/a_Prec@5': 2 / 3, 'refexp/a_Prec@10': 2 / 3,
                'refexp/b_Prec@1': 1 / 2, 'refexp/b_Prec@5': 1 / 2, 'refexp/b_Prec@10': 1.0}
    assert res.keys() == expected.keys()
    for k, v in expected.items():
        assert res[k] == pytest.approx(100 * v), k


def test_iou_threshold_and_topk():
    # IoU of HIT with GT is 0.9025
    assert evaluate(RefExpMetric(topk=(1, ), iou_thr=0.95), [sample(0, 'a', 0)])['refexp/Prec@1'] == 0.0
    res = evaluate(RefExpMetric(topk=(2, 1, 2), prefix='x'), [sample(0, 's', 1)])
    assert res == {'x/Prec@1': 0.0, 'x/Prec@2': 100.0, 'x/s_Prec@1': 0.0, 'x/s_Prec@2': 100.0}
    with pytest.raises(ValueError, match='topk'):
        RefExpMetric(topk=(0, 1))


def test_any_of_several_gt_boxes_and_no_prediction():
    two_gt = sample(0, 'a', None, gt=GT)
    two_gt['ori_gt_bboxes'] = np.array([GT, MISS], np.float32)  # the MISS box is now a GT box too
    empty = sample(1, 'a', None, n=0)
    res = evaluate(RefExpMetric(topk=(1, )), [two_gt, empty])
    assert res['refexp/Prec@1'] == 50.0


def test_outfile_dump(tmp_path):
    prefix = str(tmp_path / 'run')
    res = evaluate(RefExpMetric(outfile_prefix=prefix), samples())
    with open(prefix + '.refexp.json') as f:
        dumped = json.load(f)
    assert dumped['iou_thr'] == 0.5
    assert dumped['metrics']['Prec@1'] == pytest.approx(res['refexp/Prec@1']) == pytest.approx(40.0)
    preds = dumped['predictions']
    assert [p['img_id'] for p in preds] == [0, 1, 2, 3, 4]
    assert preds[0]['pred_bbox'] == HIT and preds[0]['gt_bboxes'] == [GT] and preds[0]['split'] == 'a'
    assert preds[0]['iou'] == pytest.approx(361 / 400) and preds[0]['text'] == 'expression 0'


def test_missing_ori_gt_bboxes():
    bad = sample(7, 'a', 0)
    del bad['ori_gt_bboxes']
    with pytest.raises(KeyError, match=r'sample 7\.png has no "ori_gt_bboxes".*LoadGroundingAnnotations'):
        RefExpMetric().process({}, [bad])
