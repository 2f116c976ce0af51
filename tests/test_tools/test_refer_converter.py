"""Tests of tools/dataset_converters/refer_to_mdetr.py on a tiny file in the exact REFER structure."""
import importlib.util
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'dataset_converters', 'refer_to_mdetr.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('refer_to_mdetr', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def sentence(sent_id, sent):
    return dict(tokens=sent.split(), raw=sent.capitalize() + '.', sent_id=sent_id, sent=sent)


def refer_files(root, refs=None, anns=None, protocol=2):
    """Write ``refs(unc).p`` and ``instances.json`` as in the REFER release: refs carry the *annotation's*
    file name (``..._{ann_id}.jpg``), instances.json the COCO images and annotations."""
    images = [dict(id=581857, file_name='COCO_train2014_000000581857.jpg', height=640, width=480, license=1),
              dict(id=42, file_name='COCO_train2014_000000000042.jpg', height=333, width=500, license=1)]
    anns = anns if anns is not None else [
        dict(id=1719310, image_id=581857, bbox=[103.93, 299.99, 134.22, 177.42], area=13589.5, iscrowd=0,
             category_id=1, segmentation=[[0, 0, 1, 1, 2, 2]]),
        dict(id=1719311, image_id=581857, bbox=[10.0, 20.0, 30.5, 40.25], area=1227.6, iscrowd=0, category_id=1,
             segmentation=[[0, 0, 1, 1, 2, 2]]),
        dict(id=7, image_id=42, bbox=[0.0, 0.0, 500.0, 333.0], area=166500.0, iscrowd=0, category_id=18,
             segmentation=[[0, 0, 1, 1, 2, 2]]),
    ]
    refs = refs if refs is not None else [
        dict(sent_ids=[0, 1], file_name='COCO_train2014_000000581857_16.jpg', ann_id=1719310, ref_id=0,
             image_id=581857, split='train', category_id=1,
             sentences=[sentence(0, 'the lady with the blue shirt'), sentence(1, 'lady with back to us')]),
        dict(sent_ids=[2], file_name='COCO_train2014_000000581857_17.jpg', ann_id=1719311, ref_id=1,
             image_id=581857, split='testA', category_id=1, sentences=[sentence(2, 'left guy')]),
        dict(sent_ids=[3, 4], file_name='COCO_train2014_000000000042_7.jpg', ann_id=7, ref_id=2, image_id=42,
             split='testB', category_id=18, sentences=[sentence(3, 'dog'), sentence(4, '  ')]),
        dict(sent_ids=[5], file_name='COCO_train2014_000000000042_7.jpg', ann_id=7, ref_id=3, image_id=42,
             split='val', category_id=18, sentences=[sentence(5, 'the whole dog picture')]),
    ]
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, 'refs(unc).p'), 'wb') as f:
        pickle.dump(refs, f, protocol=protocol)
    with open(osp.join(root, 'instances.json'), 'w') as f:
        json.dump(dict(info=dict(description='refcoco'), licenses=[], images=images, annotations=anns,
                       categories=[dict(id=1, name='person'), dict(id=18, name='dog')]), f)
    return root


def run(refer_dir, out_dir, dataset='refcoco'):
    return tool.main(['--refer-dir', str(refer_dir), '--dataset', dataset, '--split-by', 'unc', '--out-dir',
                      str(out_dir)])


def read(out_dir, name):
    with open(osp.join(out_dir, name)) as f:
        return json.load(f)


def test_convert(tmp_path, capsys):
    refer = refer_files(str(tmp_path / 'refer' / 'refcoco'))
    out = tmp_path / 'mdetr'
    assert run(refer, out) == 0
    assert sorted(os.listdir(out)) == [f'finetune_refcoco_{s}.json' for s in ('testA', 'testB', 'train', 'val')]
    printed = capsys.readouterr().out
    assert 'train:       2 expressions of      1 refs' in printed and '1 empty sentences left out' in printed

    train = read(out, 'finetune_refcoco_train.json')
    assert [im['caption'] for im in train['images']] == ['the lady with the blue shirt', 'lady with back to us']
    assert [im['id'] for im in train['images']] == [0, 1] and [a['image_id'] for a in train['annotations']] == [0, 1]
    im, ann = train['images'][0], train['annotations'][0]
    assert im['file_name'] == 'COCO_train2014_000000581857.jpg'
    assert (im['height'], im['width'], im['original_id'], im['dataset_name']) == (640, 480, 581857, 'refcoco')
    assert im['tokens_positive_eval'] == [[[0, 28]]]
    assert ann['bbox'] == [103.93, 299.99, 134.22, 177.42] and ann['area'] == 13589.5
    assert (ann['category_id'], ann['iscrowd'], ann['tokens_positive']) == (1, 0, [[0, 28]])
    assert train['categories'][1] == dict(id=18, name='dog')

    # ids run on across the splits (train, val, testA, testB); the empty sentence is left out
    val, test_a = read(out, 'finetune_refcoco_val.json'), read(out, 'finetune_refcoco_testA.json')
    test_b = read(out, 'finetune_refcoco_testB.json')
    assert [im['id'] for im in val['images']] == [2] and [im['id'] for im in test_a['images']] == [3]
    assert [im['caption'] for im in test_b['images']] == ['dog'] and test_b['images'][0]['id'] == 4
    assert test_a['annotations'][0]['bbox'] == [10.0, 20.0, 30.5, 40.25]
    assert test_b['info']['skipped_empty'] == 1


def test_output_loads_with_refcoco_dataset(tmp_path):
    from mmvlg.datasets import RefCOCODataset
    from mmvlg.utils import register_all_modules
    register_all_modules()
    refer = refer_files(str(tmp_path / 'refer'))
    run(refer, tmp_path / 'mdetr')
    ds = RefCOCODataset(data_root=str(tmp_path), ann_file='mdetr/finetune_refcoco_train.json',
                        data_prefix=dict(img='coco/train2014/'), check_images=False, pipeline=[])
    assert len(ds) == 2 and ds.split == 'refcoco_train'
    info = ds.get_data_info(0)
    assert info['img_path'] == osp.join(str(tmp_path), 'coco/train2014/COCO_train2014_000000581857.jpg')
    assert info['text'] == 'the lady with the blue shirt' and info['original_id'] == 581857
    np.testing.assert_allclose(info['instances'][0]['bbox'], [103.93, 299.99, 238.15, 477.41])
    assert info['instances'][0]['tokens_positive'] == [[0, 28]]


def test_cli(tmp_path):
    refer = refer_files(str(tmp_path / 'refer'))
    proc = subprocess.run([sys.executable, SCRIPT, '--refer-dir', refer, '--dataset', 'refcoco+', '--split-by',
                           'unc', '--out-dir', str(tmp_path / 'out')], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert read(tmp_path / 'out', 'finetune_refcoco+_val.json')['images'][0]['dataset_name'] == 'refcoco+'


def test_missing_files(tmp_path, capsys):
    assert run(tmp_path / 'nothing', tmp_path / 'out') == 1
    assert "refs file '" in capsys.readouterr().err
    refer = refer_files(str(tmp_path / 'refer'))
    os.remove(osp.join(refer, 'instances.json'))
    with pytest.raises(FileNotFoundError, match=r'instances\.json'):
        tool.convert(refer, 'refcoco', 'unc', str(tmp_path / 'out'))


def test_unknown_ann_id(tmp_path):
    refs = [dict(sent_ids=[0], file_name='COCO_train2014_000000042_99.jpg', ann_id=99, ref_id=5, image_id=42,
                 split='train', category_id=1, sentences=[sentence(0, 'the cat')])]
    refer = refer_files(str(tmp_path / 'refer'), refs=refs)
    with pytest.raises(tool.ConversionError, match=r'ref_id 5 of .*refs\(unc\)\.p: its ann_id 99 is not in '
                                                   r'.*instances\.json'):
        tool.convert(refer, 'refcoco', 'unc', str(tmp_path / 'out'))
    assert not osp.exists(tmp_path / 'out' / 'finetune_refcoco_train.json')


class _Payload:
    """Unpickling this calls os.makedirs(path): a stand-in for arbitrary code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.makedirs, (self.path, )


def test_pickle_with_code_is_refused(tmp_path):
    refer = str(tmp_path / 'refer')
    os.makedirs(refer)
    with open(osp.join(refer, 'refs(unc).p'), 'wb') as f:
        pickle.dump([dict(ref_id=0, payload=_Payload(str(tmp_path / 'pwned')))], f)
    with pytest.raises(tool.ConversionError, match=r'refs\(unc\)\.p: not a readable REFER refs pickle .*refusing '
                                                   r'to load the global .*makedirs'):
        tool.load_refs(osp.join(refer, 'refs(unc).p'))
    assert not osp.exists(tmp_path / 'pwned')


@pytest.mark.parametrize('content', [b'not a pickle at all', pickle.dumps({'refs': []}), pickle.dumps([{'ref_id': 3}])])
def test_malformed_pickle(tmp_path, content):
    path = tmp_path / 'refs(unc).p'
    path.write_bytes(content)
    with pytest.raises(tool.ConversionError, match=r'refs\(unc\)\.p'):
        tool.load_refs(str(path))


def test_python2_pickle_with_utf8_bytes(tmp_path):
    """REFER's pickles come from Python 2, where ``str`` is bytes: they are decoded as UTF-8."""
    # protocol 2, as cPickle writes [{'sent': 'café'}] with byte strings (SHORT_BINSTRING)
    raw = b'\x80\x02]q\x00}q\x01(U\x04sentq\x02U\x05caf\xc3\xa9q\x03ua.'
    path = tmp_path / 'refs(unc).p'
    path.write_bytes(raw)
    with open(path, 'rb') as f:
        assert tool._PlainDataUnpickler(f, encoding='utf-8').load() == [{'sent': 'café'}]
    with pytest.raises(tool.ConversionError, match='has no ref_id'):
        tool.load_refs(str(path))
