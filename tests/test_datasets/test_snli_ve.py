"""SNLIVEDataset: SNLI-VE's JSON lines (Flikr30kID / sentence2 / gold_label), the fields it gives, and its errors
naming the file and the line."""
import json

import numpy as np
import pytest
from PIL import Image

from mmvlg.datasets import AnnotationError, SNLIVEDataset
from mmvlg.datasets.snli_ve import ENTAILMENT_CLASSES


def _write(tmp_path, lines, images=('111.jpg', '222.jpg')):
    img_dir = tmp_path / 'flickr30k_images'
    img_dir.mkdir(exist_ok=True)
    for name in images:
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(img_dir / name)
    ann = tmp_path / 'snli_ve_dev.jsonl'
    ann.write_text('\n'.join(line if isinstance(line, str) else json.dumps(line) for line in lines) + '\n')
    return str(ann), str(img_dir) + '/'


def _line(pair, image='111.jpg', label='entailment', hypothesis='A dog runs.', **extra):
    return dict({'Flikr30kID': image, 'pairID': pair, 'captionID': f'{image}#0', 'sentence1': 'A dog is running.',
                 'sentence2': hypothesis, 'gold_label': label, 'annotator_labels': [label]}, **extra)


def _dataset(ann, img, **kwargs):
    return SNLIVEDataset(ann_file=ann, data_prefix=dict(img=img), pipeline=[], **kwargs)


def test_reads_the_official_fields(tmp_path):
    ann, img = _write(tmp_path, [_line('111.jpg#0r1e'), _line('111.jpg#0r1n', label='neutral'), '',
                                 _line('222.jpg#3r1c', image='222', label='Contradiction ', hypothesis=' Cats. ')])
    ds = _dataset(ann, img)
    assert len(ds) == 3 and ds.metainfo['classes'] == ENTAILMENT_CLASSES
    infos = [ds.get_data_info(i) for i in range(3)]
    assert [d['label'] for d in infos] == [0, 1, 2]
    assert infos[2]['img_path'] == img + '222.jpg'  # '.jpg' appended to an id without extension
    assert infos[2]['text'] == 'Cats.' and infos[2]['img_id'] == '222.jpg#3r1c' and infos[2]['split'] == 'snli_ve_dev'
    assert infos[0]['premise'] == 'A dog is running.' and infos[0]['image_id'] == '111.jpg'
    assert 'snli_ve_dev.jsonl' in infos[0]['image_check']['where']


def test_a_label_outside_the_three_classes_names_the_file_and_line(tmp_path):
    ann, img = _write(tmp_path, [_line('a'), _line('b', label='-')])
    with pytest.raises(AnnotationError, match=r"snli_ve_dev.jsonl, line 2: pair 'b' has the gold_label '-'"):
        _dataset(ann, img)
    ann, img = _write(tmp_path, [_line('a', label=None)])
    with pytest.raises(AnnotationError, match=r"line 1: pair 'a' has the gold_label None; expected one of"):
        _dataset(ann, img)


def test_other_bad_input(tmp_path):
    ann, img = _write(tmp_path, [_line('a'), _line('a')])
    with pytest.raises(AnnotationError, match=r"line 2: pair 'a': the pairID appears twice"):
        _dataset(ann, img)
    ann, img = _write(tmp_path, [{'pairID': 'x', 'sentence2': 'h', 'gold_label': 'neutral'}])
    with pytest.raises(AnnotationError, match=r"line 1: pair 'x' has no image id"):
        _dataset(ann, img)
    ann, img = _write(tmp_path, ['{"Flikr30kID": '])
    with pytest.raises(AnnotationError, match='line 1: not valid JSON'):
        _dataset(ann, img)
    ann, img = _write(tmp_path, [_line('a', hypothesis=' '), _line('b', image='333.jpg'), _line('c')])
    with pytest.raises(AnnotationError, match=r"line 1: pair 'a' has an empty or non-string hypothesis"):
        _dataset(ann, img)
    with pytest.warns(UserWarning):
        ds = _dataset(ann, img, skip_invalid=True)  # the empty hypothesis and the missing image are skipped
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == ['c']
    ann, img = _write(tmp_path, [_line('b', image='333.jpg')])
    with pytest.raises(FileNotFoundError, match=r"line 1: pair 'b': image file .*333.jpg"):
        _dataset(ann, img)
    ann, img = _write(tmp_path, ['', ' '])
    with pytest.raises(AnnotationError, match='no \\(image, hypothesis\\) pair'):
        _dataset(ann, img)
