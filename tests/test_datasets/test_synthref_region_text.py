"""SynthRef region-text: generation (deterministic, well-formed), both data sets and the X-VLM pipeline."""
import filecmp
import json

import numpy as np
import pytest

from mmvlg.datasets.synthetic import (
    SynthRefImageTextDataset,
    SynthRefRegionTextConfig,
    SynthRefRegionTextDataset,
    caption_vocabulary,
    generate_synthref_region_text,
)
from mmvlg.datasets.synthetic.synthref import caption_words
from mmvlg.utils import register_all_modules

register_all_modules()

GEN = dict(num_scenes=dict(train=12, val=4), image_size=48)


def test_generation_is_deterministic_and_well_formed(tmp_path):
    a = generate_synthref_region_text(str(tmp_path / 'a'), SynthRefRegionTextConfig(**GEN))
    b = generate_synthref_region_text(str(tmp_path / 'b'), SynthRefRegionTextConfig(**GEN))
    for f in ('annotations/regions_train.jsonl', 'annotations/captions_val.json', 'images/train/000003.png'):
        assert filecmp.cmp(f'{a}/{f}', f'{b}/{f}', shallow=False)
    lines = (tmp_path / 'a/annotations/regions_train.jsonl').read_text().splitlines()
    entries = [json.loads(x) for x in lines]
    assert len(entries) == 12 and [e['image_id'] for e in entries] == list(range(12))
    vocab = set(caption_vocabulary())
    relations = 0
    for e in entries:
        assert len(e['caption']) == 3 and e['image'] == f'train/{e["image_id"]:06d}.png'
        for elem in e['elems']:
            x, y, w, h = elem['bb']
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 48 and y + h <= 48
            relations += ' of ' in elem['caption'] or ' above ' in elem['caption'] or ' below ' in elem['caption']
            words = caption_words(' '.join([elem['caption']] + elem.get('attributes', [])))
            assert set(words) <= vocab
    assert relations > 0
    caps = json.loads((tmp_path / 'a/annotations/captions_train.json').read_text())
    assert len(caps['images']) == 12 and len(caps['annotations']) == 36
    assert caps['annotations'][0]['caption'] == entries[0]['caption'][0]


def test_datasets_and_pipeline(tmp_path):
    root = str(tmp_path / 'srt')
    pipeline = [dict(type='LoadImageFromFile'), dict(type='RegionTextSampler', max_regions=4),
                dict(type='mmdet.Resize', scale=(32, 32), keep_ratio=False), dict(type='PackRegionTextInputs')]
    ds = SynthRefRegionTextDataset(data_root=root, ann_file='annotations/regions_train.jsonl',
                                   data_prefix=dict(img='images/'), generate=GEN, pipeline=pipeline)
    pairs = SynthRefImageTextDataset(data_root=root, ann_file='annotations/captions_train.json',
                                     data_prefix=dict(img='images/'), generate=GEN)
    assert len(ds) == 12 and len(pairs) == 36
    np.random.seed(0)
    s = ds[0]['data_samples']
    assert s.region_is_image[0] and 1 < len(s.region_texts) <= 4 and s.gt_instances.bboxes.shape[1] == 4
    with pytest.raises(FileExistsError):
        generate_synthref_region_text(root, SynthRefRegionTextConfig(**dict(GEN, relations_per_scene=0)))
