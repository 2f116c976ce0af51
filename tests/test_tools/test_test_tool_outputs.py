"""``tools/test.py --out`` on the FIBER retrieval and VQA configs (issue 15, Tools item 1): every metric accepts the
``outfile_prefix`` that ``--out`` sets, VQA writes its answers in the VQA v2 results format and retrieval its
ranked lists per query.

The tool runs in-process on the tiny SynthRef configs with a randomly initialized checkpoint of the config's
model (the data sets are generated on first use under ``tmp_path``, shrunk through ``--cfg-options``).
"""
import glob
import importlib.util
import json
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

FIBER = osp.join(REPO_ROOT, 'configs', 'fiber')
VQA = osp.join(FIBER, 'fiber-vqa_swin-nano_roberta-tiny_1xb32-2k_synthref-vqa.py')
RETRIEVAL = osp.join(FIBER, 'fiber-coarse_swin-nano_roberta-tiny_1xb16-3k_synthref-captions.py')


def run_test_tool(monkeypatch, tmp_path, config: str, generate: list, name: str, extra: tuple = ()) -> str:
    register_all_modules()
    cfg = Config.fromfile(config)
    checkpoint = str(tmp_path / 'random.pth')
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict(), meta=dict()), checkpoint)
    prefix = str(tmp_path / 'results')
    options = [f'test_dataloader.dataset.data_root={tmp_path / "data"}', *generate,
               'test_dataloader.batch_size=4', 'test_dataloader.num_workers=0',
               'test_dataloader.persistent_workers=False', f'experiment_name=out_{name}', f'visualizer.name=vis_{name}']
    spec = importlib.util.spec_from_file_location('_mmvlg_tools_test', osp.join(REPO_ROOT, 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.setattr(sys, 'argv', ['test.py', config, checkpoint, '--work-dir', str(tmp_path / 'work'),
                                      '--out', prefix, *extra, '--cfg-options', *options])
    tool.main()
    return prefix


@pytest.mark.filterwarnings('ignore')
def test_out_on_vqa_config_writes_vqa_v2_results(tmp_path, monkeypatch):
    ds = 'test_dataloader.dataset.generate'
    prefix = run_test_tool(monkeypatch, tmp_path, VQA, [f'{ds}.num_scenes.train=2', f'{ds}.num_scenes.val=2',
                                                        f'{ds}.questions_per_scene=3', f'{ds}.image_size=32'], 'vqa',
                           ('--show-dir', 'vis'))
    with open(prefix + '.vqa.json') as f:
        results = json.load(f)
    assert isinstance(results, list) and len(results) == 6
    for r in results:
        assert set(r) == {'question_id', 'answer'}
        assert isinstance(r['question_id'], int) and isinstance(r['answer'], str)
    assert len({r['question_id'] for r in results}) == 6
    with open(prefix + '.vqa_metrics.json') as f:
        assert 0 <= json.load(f)['accuracy'] <= 100
    # --show-dir (item 2): one drawing per question, named by its question id
    drawings = glob.glob(str(tmp_path / 'work' / '*' / 'vis' / '*' / '*.png'))
    assert sorted(int(osp.splitext(d)[0].rsplit('_', 1)[1]) for d in drawings) == sorted(
        r['question_id'] for r in results)


@pytest.mark.filterwarnings('ignore')
def test_out_on_retrieval_config_writes_ranked_lists(tmp_path, monkeypatch):
    ds = 'test_dataloader.dataset.generate'
    prefix = run_test_tool(monkeypatch, tmp_path, RETRIEVAL, [f'{ds}.num_scenes.train=2', f'{ds}.num_scenes.val=3',
                                                              f'{ds}.image_size=32'], 'retrieval')
    with open(prefix + '.retrieval.json') as f:
        dumped = json.load(f)
    assert 0 <= dumped['metrics']['R_mean'] <= 100
    t2i, i2t = dumped['image_retrieval'], dumped['text_retrieval']
    assert len(i2t) == 3 and len(t2i) == 9  # 3 images, three descriptions each
    image_ids = {q['img_id'] for q in i2t}
    for q in t2i:  # per text query: the gallery images, best first
        assert {'text_id', 'img_id', 'text', 'ranked_img_ids', 'scores'} <= set(q)
        assert sorted(q['ranked_img_ids']) == sorted(image_ids) and q['scores'] == sorted(q['scores'], reverse=True)
    text_ids = [q['text_id'] for q in t2i]
    for q in i2t:  # per image query: the texts, best first
        assert sorted(q['ranked_text_ids']) == sorted(text_ids)
