"""Proposal files (X-VLM's dets.json, MAttNet's detection list, SynthRef's scenes, mmdet's results .pkl) and
LoadProposals: boxes in x1, y1, x2, y2, a missing image is an error naming the file and the image id, packing
into the data sample's proposals, and a pickle with code refused."""
import json
import os
import pickle

import mmengine
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmvlg.datasets.transforms import LoadProposals, PackGroundingInputs, load_proposal_file


def test_xvlm_dets_json_xywh(tmp_path):
    path = tmp_path / 'dets.json'
    path.write_text(json.dumps({'12': [[10, 20, 30, 40, 0.9, 1], [0, 0, 5, 5, 0.1, 2]], '13': []}))
    props = load_proposal_file(str(path))
    np.testing.assert_allclose(props['12']['bboxes'], [[10, 20, 40, 60], [0, 0, 5, 5]])
    np.testing.assert_allclose(props['12']['scores'], [1.0, 1.0])  # a list entry has no named score
    assert props['13']['bboxes'].shape == (0, 4)


def test_mattnet_list_and_scenes_dicts(tmp_path):
    path = tmp_path / 'mattnet.json'
    path.write_text(json.dumps([dict(det_id=1, image_id=7, box=[1, 2, 3, 4], score=0.8),
                                dict(det_id=2, image_id=7, box=[5, 5, 1, 1], score=0.2)]))
    props = load_proposal_file(str(path), score_thr=0.5)
    np.testing.assert_allclose(props['7']['bboxes'], [[1, 2, 4, 6]])
    scenes = tmp_path / 'scenes.json'
    scenes.write_text(json.dumps({'0': [dict(shape='circle', bbox=[1.5, 2.5, 9.5, 10.5])]}))
    np.testing.assert_allclose(load_proposal_file(str(scenes), 'xyxy')['0']['bboxes'], [[1.5, 2.5, 9.5, 10.5]])


def test_mmdet_results_pkl(tmp_path):
    ds = DetDataSample(metainfo=dict(img_id=42, img_path='a.jpg'))
    ds.pred_instances = InstanceData(bboxes=torch.tensor([[1., 2., 3., 4.], [5., 6., 7., 8.], [0., 0., 1., 1.]]),
                                     scores=torch.tensor([0.2, 0.9, 0.5]), labels=torch.zeros(3, dtype=torch.long))
    path = str(tmp_path / 'results.pkl')
    mmengine.dump([ds.to_dict()], path)
    props = load_proposal_file(path, max_per_image=2)
    np.testing.assert_allclose(props['42']['bboxes'], [[5, 6, 7, 8], [0, 0, 1, 1]])
    np.testing.assert_allclose(props['42']['scores'], [0.9, 0.5])


class _Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_a_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps([dict(img_id=1, pred_instances=dict(bboxes=_Evil()))]))
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        load_proposal_file(str(path))


def test_missing_image_names_the_file_and_the_id(tmp_path):
    path = tmp_path / 'dets.json'
    path.write_text(json.dumps({'12': [[10, 20, 30, 40]], '13': []}))
    t = LoadProposals(str(path))
    with pytest.raises(KeyError, match=r'dets\.json has no proposals for image 99'):
        t(dict(original_id=99, img_id=5, img_path='x.jpg'))
    with pytest.raises(ValueError, match=r'dets\.json lists no proposal for image 13'):
        t(dict(original_id=13, img_id=5))
    assert len(LoadProposals(str(path), allow_empty=True)(dict(original_id=13))['proposals']) == 0
    with pytest.raises(KeyError, match="no 'original_id'"):
        t(dict(img_id=5))
    with pytest.raises(FileNotFoundError, match='nowhere.json'):
        LoadProposals(str(tmp_path / 'nowhere.json'))(dict(original_id=1))
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'3': [[1, 2]]}))
    with pytest.raises(ValueError, match=r'bad\.json: image 3'):
        load_proposal_file(str(bad))


def test_packed_into_the_data_sample(tmp_path):
    path = tmp_path / 'dets.json'
    path.write_text(json.dumps({'12': [[10, 20, 30, 40], [0, 0, 5, 5]]}))
    results = LoadProposals(str(path))(dict(
        original_id=12, img_id=0, img=np.zeros((64, 64, 3), np.uint8), img_shape=(64, 64), ori_shape=(64, 64),
        text='the red circle', gt_bboxes=np.zeros((0, 4), np.float32), gt_bboxes_labels=np.zeros(0, np.int64)))
    packed = PackGroundingInputs()(results)['data_samples']
    torch.testing.assert_close(packed.proposals.bboxes, torch.tensor([[10., 20., 40., 60.], [0., 0., 5., 5.]]))
