"""Tests of FlickrRecallMetric (mmvlg/evaluation/metrics/phrase_grounding_metric.py)."""
import json

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmvlg.evaluation.metrics import FlickrRecallMetric

A, B = [0., 0., 10., 10.], [20., 20., 30., 30.]  # two boxes of one phrase; their union is [0, 0, 30, 30]
C, D = [0., 0., 10., 10.], [12., 0., 22., 10.]  # two boxes whose union [0, 0, 22, 10] has IoU < 0.5 with each
FAR = [50., 50., 60., 60.]


def phrase(*boxes):
    return dict(phrase_id=0, tokens_positive=[[0, 3]], gt_bboxes=[list(b) for b in boxes])


def sample(img_id, split, phrases, preds):
    return dict(img_id=img_id, split=split, img_path=f'{img_id}.jpg', phrases=phrases,
                pred_instances=dict(phrase_bboxes=[torch.tensor(p).view(-1, 4) for p in preds]))


def samples():
    """Per phrase (separateGT | mergedGT hit ranks):

    s1: p0 GT {A, B}, preds [B, ...]          -> rank 0      | never (IoU(B, union) = 1/9)
        p1 GT {A},    preds [FAR x3, A]       -> rank 3      | rank 3
    s2: p0 GT {C, D}, preds [union(C, D)]     -> never       | rank 0
        p1 GT {A},    preds []                -> never       | never
        p2 GT {A},    preds [FAR x7, A, ...]  -> rank 7      | rank 7
        p3 no GT box                          -> not counted
    """
    return [
        sample(0, 's1', [phrase(A, B), phrase(A)], [[B, FAR], [FAR, FAR, FAR, A]]),
        sample(1, 's2', [phrase(C, D), phrase(A), phrase(A), phrase()],
               [[[0., 0., 22., 10.]], [], [FAR] * 7 + [A, FAR, FAR, FAR], [A]]),
    ]


def evaluate(metric, data):
    metric.process({}, data)
    return metric.evaluate(len(data))


def test_separate_gt_any_box_protocol():
    res = evaluate(FlickrRecallMetric(), samples())
    # 5 phrases: hits at ranks 0, 3, -, -, 7
    expected = {'flickr/Recall@1': 1 / 5, 'flickr/Recall@5': 2 / 5, 'flickr/Recall@10': 3 / 5,
                'flickr/s1_Recall@1': 1 / 2, 'flickr/s1_Recall@5': 1.0, 'flickr/s1_Recall@10': 1.0,
                'flickr/s2_Recall@1': 0.0, 'flickr/s2_Recall@5': 0.0, 'flickr/s2_Recall@10': 1 / 3}
    assert res.keys() == expected.keys()
    for k, v in expected.items():  # in percent, like every mmvlg metric (issue 15, Tools item 6)
        assert res[k] == pytest.approx(100 * v), k


def test_merged_gt_protocol():
    res = evaluate(FlickrRecallMetric(merge_boxes=True, topk=(1, 5, 10)), samples())
    # hits at ranks -, 3, 0, -, 7
    assert res['flickr/Recall@1'] == pytest.approx(100 / 5)
    assert res['flickr/Recall@5'] == pytest.approx(200 / 5)
    assert res['flickr/Recall@10'] == pytest.approx(300 / 5)
    assert res['flickr/s1_Recall@1'] == 0.0 and res['flickr/s2_Recall@1'] == pytest.approx(100 / 3)


def test_from_det_data_samples(tmp_path):
    """The path of a real run: predictions in pred_instances' metainfo, the evaluator's ``to_dict()``."""
    data = []
    for s in samples():
        ds = DetDataSample(metainfo=dict(img_id=s['img_id'], split=s['split'], phrases=s['phrases']))
        pred = InstanceData(bboxes=torch.zeros(3, 4), scores=torch.zeros(3))
        pred.set_metainfo(dict(phrase_bboxes=s['pred_instances']['phrase_bboxes']))
        ds.pred_instances = pred
        data.append(ds.to_dict())
    prefix = str(tmp_path / 'out')
    res = evaluate(FlickrRecallMetric(outfile_prefix=prefix, prefix='f30k'), data)
    assert res['f30k/Recall@1'] == pytest.approx(100 / 5)
    with open(prefix + '.flickr.json') as f:
        dumped = json.load(f)
    assert dumped['merge_boxes'] is False and dumped['metrics']['Recall@10'] == pytest.approx(300 / 5)
    assert [len(s['phrases']) for s in dumped['samples']] == [2, 3]


def test_bad_inputs():
    metric = FlickrRecallMetric()
    no_phrases = sample(3, 's', [phrase(A)], [[A]])
    del no_phrases['phrases']
    with pytest.raises(KeyError, match=r'3\.jpg has no "phrases"'):
        metric.process({}, [no_phrases])
    with pytest.raises(KeyError, match='phrase_bboxes'):
        metric.process({}, [dict(sample(4, 's', [phrase(A)], [[A]]), pred_instances=dict(bboxes=torch.zeros(1, 4)))])
    with pytest.raises(ValueError, match=r'5\.jpg has 2 phrases but 1 entries'):
        metric.process({}, [sample(5, 's', [phrase(A), phrase(B)], [[A]])])
    with pytest.raises(ValueError, match='topk'):
        FlickrRecallMetric(topk=(-1, ))
