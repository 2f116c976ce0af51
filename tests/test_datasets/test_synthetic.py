"""Tests of the synthetic-data package (mmvlg/datasets/synthetic/): the files are those of the code before the
package existed, the old module paths still work, and a new set is a few lines."""
import hashlib
import json
import os
import os.path as osp

import numpy as np
import PIL
import pytest
from PIL import Image

from mmvlg.datasets import synthetic
from mmvlg.datasets.synthetic import (
    SceneConfig,
    SynthRefCaptionsConfig,
    SynthRefConfig,
    SynthRefVQAConfig,
    dump_json,
    generate_once,
    generate_synthref,
    generate_synthref_captions,
    generate_synthref_vqa,
    render_scenes,
    scene_record,
    seed_stream,
    write_generated_data,
)
from mmvlg.registry import DATASETS

# Digests of the files that the generators wrote for these tiny configs before they moved into the package
# (mmvlg/datasets/synthref*.py at commit 691bebb, Pillow 13.0.0): ``FILES`` over the bytes of every file,
# ``PIXELS`` with the PNGs decoded (independent of the PNG encoder of the installed Pillow).
TINY = {
    'synthref': (generate_synthref,
                 SynthRefConfig(num_scenes=dict(train=3, val=2, testA=2, testB=2), image_size=32, seed=3)),
    'captions': (generate_synthref_captions,
                 SynthRefCaptionsConfig(num_scenes=dict(train=3, val=2), image_size=32, seed=3)),
    'vqa': (generate_synthref_vqa, SynthRefVQAConfig(num_scenes=dict(train=4, val=2), image_size=32, seed=3)),
}
FILES = {
    'synthref': '596f55fa06a4a363547debc45109e8d59bbd771c68df3775694ca8060b778875',
    'captions': 'e504b562bb341ce6266f20060e1cde6dfbc7eacd408344c9110bfd60522abbae',
    'vqa': 'dc2d9ced7d94033e2d0d6fec2cfdafe88563ef7c4fbb1164d5892f445bcdcfb0',
}
PIXELS = {
    'synthref': 'f9b21f9f4120a3c3f9a09446222dd1e3a5209e64d1a4187be5360b6b379fa158',
    'captions': 'b36d972c565e4f78cf6f4002d1fda31bf67ea2caff676fa598f47f30bb8bff23',
    'vqa': '4c9b34bfb68215004fbad2746f24f7de39866f50006a8296b78274b854d9209b',
}
DIGEST_PILLOW = '13.0.0'


def digest(root: str, decode_png: bool) -> str:
    h = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = osp.join(folder, name)
            h.update(osp.relpath(path, root).encode() + b'\0')
            if decode_png and name.endswith('.png'):
                pixels = np.asarray(Image.open(path))
                h.update(str(pixels.shape).encode() + pixels.tobytes())
            else:
                with open(path, 'rb') as f:
                    h.update(f.read())
    return h.hexdigest()


@pytest.mark.parametrize('name', sorted(TINY))
def test_files_are_those_of_the_old_generators(name, tmp_path):
    generate, cfg = TINY[name]
    root = generate(str(tmp_path / name), cfg)
    assert digest(root, decode_png=True) == PIXELS[name]  # the same JSON and text bytes, the same pixels
    if PIL.__version__ == DIGEST_PILLOW:  # another Pillow (zlib) may compress the same pixels differently
        assert digest(root, decode_png=False) == FILES[name]


def test_old_module_paths_and_registered_names():
    from mmvlg.datasets import refexp, synthref, synthref_captions, synthref_vqa
    assert synthref.vocabulary is synthetic.synthref.vocabulary  # the word tokenizer's SynthRef vocabulary
    assert synthref.generate_synthref is generate_synthref and synthref.SynthRefConfig is SynthRefConfig
    assert synthref._Obj is synthetic.SceneObject and synthref._draw is synthetic.draw_scene
    assert synthref._place_objects is synthetic.place_objects
    assert synthref._relation_expressions is synthetic.relation_expressions
    assert synthref.WRITER_LOCK == synthetic.writer.WRITER_LOCK
    assert synthref.write_generated_data is write_generated_data
    assert refexp.SynthRefDataset is synthetic.SynthRefDataset
    assert synthref_captions.generate_synthref_captions is generate_synthref_captions
    assert synthref_vqa.generate_synthref_vqa is generate_synthref_vqa
    assert synthref_vqa.SynthRefVQADataset is synthetic.SynthRefVQADataset
    for name in ('SynthRefDataset', 'SynthRefCaptionDataset', 'SynthRefVQADataset'):
        assert DATASETS.get(name) is getattr(synthetic, name)


@pytest.mark.parametrize('rank', [0, 1])
def test_generate_once_runs_on_rank_0_and_waits_everywhere(rank, monkeypatch):
    import mmengine.dist
    calls = []
    monkeypatch.setattr(mmengine.dist, 'get_rank', lambda *args: rank)
    monkeypatch.setattr(mmengine.dist, 'barrier', lambda *args: calls.append('barrier'))
    generate_once(lambda: calls.append('generate'))
    assert calls == (['generate', 'barrier'] if rank == 0 else ['barrier'])


def test_render_scenes_is_deterministic(tmp_path):
    cfg = SceneConfig(image_size=24, min_objects=2, max_objects=3)
    runs = []
    for run in ('a', 'b'):
        out = [(i, f, scene_record(objs), rng.integers(1000))
               for i, f, objs, rng in render_scenes(str(tmp_path / run), 'x', 2, cfg, seed_stream(1, 300, 'x'))]
        runs.append(out)
    assert runs[0] == runs[1] and [f for _, f, _, _ in runs[0]] == ['x/000000.png', 'x/000001.png']
    for run in ('a', 'b'):
        assert Image.open(tmp_path / run / 'images' / 'x' / '000001.png').size == (24, 24)
    other = [scene_record(o) for _, _, o, _ in render_scenes(str(tmp_path / 'c'), 'x', 2, cfg,
                                                             seed_stream(1, 301, 'x'))]
    assert other != [r for _, _, r, _ in runs[0]]  # another stream, other scenes


def test_a_new_set_is_short(tmp_path):
    """A counting set (image, "how many objects?") in a few lines from the public parts."""
    cfg = SceneConfig(image_size=24)

    def write(tmp: str) -> None:
        scenes = [dict(file_name=f, count=len(objs)) for _, f, objs, _ in
                  render_scenes(tmp, 'train', 3, cfg, seed_stream(0, 900, 'train'))]
        dump_json(scenes, osp.join(tmp, 'annotations', 'count_train.json'))

    root = write_generated_data(str(tmp_path / 'count'), dict(image_size=24, seed=0), write, 'a counting set',
                                '.count-')
    with open(osp.join(root, 'annotations', 'count_train.json')) as f:
        scenes = json.load(f)
    assert len(scenes) == 3 and all(3 <= s['count'] <= 5 for s in scenes)
    assert sorted(os.listdir(tmp_path)) == ['count']  # no temporary folder left
    assert write_generated_data(root, dict(image_size=24, seed=0), write, 'a counting set', '.count-') == root
