"""Tests of tools/analysis_tools/xvlm_mixed_attention_benchmark.py (in-process, CPU, tiny encoder)."""
import importlib.util
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'analysis_tools', 'xvlm_mixed_attention_benchmark.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('xvlm_mixed_attention_benchmark', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_table_has_both_rows(capsys):
    tool = load_tool()
    res = tool.main(['--arch', 'tiny', '--batch', '2', '--regions', '3', '--iters', '1', '--warmup', '0',
                     '--device', 'cpu'])
    out = capsys.readouterr().out
    assert '| mixed attention | 2 / 8 |' in out and '| separate images (naive) | 8 / 8 |' in out
    mixed, naive = res['rows']
    assert res['params_m'] == pytest.approx(sum(p.numel() for p in tool.MODELS.build(
        tool.encoder_config('tiny')).parameters()) / 1e6)
    assert all(r['sec_per_iter'] > 0 and r['peak_memory_mib'] > 0 for r in res['rows'])
    # 2 of 4 blocks run 8 sequences instead of 2: clearly less activation memory
    assert mixed['peak_memory_mib'] < naive['peak_memory_mib']
    assert res['max_abs_diff'] < 1e-5  # both ways give the same tokens
    assert 'less memory' in out


def test_presets_and_config(tmp_path):
    tool = load_tool()
    base = tool.encoder_config('base')
    assert (base['embed_dims'], base['depth'], base['num_heads'], base['patch_size'], base['img_size'],
            base['local_attn_depth']) == (768, 12, 12, 16, 224, 4)
    cfg = tmp_path / 'xvlm_tiny.py'
    cfg.write_text("model = dict(type='XVLM', vision_encoder=dict(type='XVLMViT', img_size=32, patch_size=8, "
                   "embed_dims=32, depth=2, num_heads=2, local_attn_depth=1, pretrained='/no/such/deit.pth'))\n")
    found = tool.encoder_config(config=str(cfg))
    assert found['depth'] == 2 and found['pretrained'] is None
    (tmp_path / 'other.py').write_text("model = dict(type='Other')\n")
    with pytest.raises(ValueError, match='no XVLMViT'):
        tool.encoder_config(config=str(tmp_path / 'other.py'))
