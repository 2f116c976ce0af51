"""Issue 15, "ONNX export": ``tools/deployment/pytorch2onnx.py`` exports MDETR* (image + token ids in, boxes and
scores out) and FIBER's fine-grained detector without deformable convolutions (raw head outputs); onnxruntime
gives PyTorch's outputs within tolerance, also along the dynamic axes (batch, text length, image size)."""
import importlib.util
import os.path as osp

import pytest
import torch

from mmvlg.testing import demo_grounding_batch, tiny_mdetr_config
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.testing.fiber import tiny_fiber_config

SCRIPT = osp.join(REPO_ROOT, 'tools', 'deployment', 'pytorch2onnx.py')
MDETR_SYNTHREF = osp.join(REPO_ROOT, 'configs', 'mdetr', 'mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py')
FIBER_SYNTHREF = osp.join(REPO_ROOT, 'configs', 'fiber', 'fiber_swin-nano_roberta-tiny_1xb16-3k_synthref.py')


def _module():
    spec = importlib.util.spec_from_file_location('pytorch2onnx', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


p2o = _module()


def needs_onnxruntime():
    pytest.importorskip('onnx', reason='onnx is not installed (pip install -r requirements/deployment.txt)')
    pytest.importorskip('onnxruntime',
                        reason='onnxruntime is not installed (pip install -r requirements/deployment.txt)')


def build(cfg: dict):
    from mmengine.registry import init_default_scope

    from mmvlg.registry import MODELS
    init_default_scope('mmvlg')
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


def test_mdetr_export_wrapper_equals_predict():
    """The tensor-only path equals ``MDETR.predict`` (same boxes in input pixels, same scores, same order)."""
    model = build(tiny_mdetr_config())
    batch = model.data_preprocessor(demo_grounding_batch(texts=['the small red circle', 'the big blue square']),
                                    False)
    with torch.no_grad():
        results = [ds.pred_instances for ds in model.predict(batch['inputs'], batch['data_samples'], rescale=False)]
    tok = model.tokenize([ds.text for ds in batch['data_samples']])
    with torch.no_grad():
        boxes, scores = p2o.wrap(model)(batch['inputs'], tok['input_ids'], tok['attention_mask'])
    for b, res in enumerate(results):
        order = scores[b].argsort(descending=True)
        torch.testing.assert_close(scores[b][order], res.scores)
        torch.testing.assert_close(boxes[b][order], res.bboxes)


def test_mdetr_onnxruntime_matches_pytorch(tmp_path):
    """Exported with batch 1, one text and a 64x96 image; checked also with batch 2, other text lengths and a
    96x64 image (learnable queries: dynamic image size)."""
    needs_onnxruntime()
    model = build(tiny_mdetr_config())
    out = str(tmp_path / 'mdetr.onnx')
    inputs = p2o.export(model, out, (64, 96))
    assert not p2o.fixed_image_size(model)
    other = p2o.other_inputs(model, (64, 96))
    assert other['image'].shape[0] == 2 and other['image'].shape[-2:] != inputs['image'].shape[-2:]
    assert other['input_ids'].shape[1] != inputs['input_ids'].shape[1]
    assert p2o.verify(model, out, [inputs, other]) < 1e-4


def test_cli_token_query_mdetr_star_synthref(tmp_path, capsys):
    """The docs' command on the SynthRef MDETR* config (two-stage token queries: image size fixed), shrunk to
    1+1 transformer layers: export, onnxruntime check and latency lines."""
    needs_onnxruntime()
    out = str(tmp_path / 'synthref.onnx')
    assert p2o.main([MDETR_SYNTHREF, '--out', out, '--verify', '--benchmark', '2', '--cfg-options',
                     'model.encoder.num_layers=1', 'model.decoder.num_layers=1']) == 0
    log = capsys.readouterr().out
    assert 'image size fixed' in log and 'onnxruntime matches PyTorch on 2 input sets' in log
    assert 'PyTorch' in log and 'onnxruntime' in log and osp.isfile(out)


def test_fiber_onnxruntime_matches_pytorch(tmp_path):
    """FIBER's fusion backbone, FPN and a DyHead without DCN: the ATSS head's raw outputs of every level,
    with another text length at run time."""
    needs_onnxruntime()
    model = build(tiny_fiber_config(use_dcn=False))
    out = str(tmp_path / 'fiber.onnx')
    inputs = p2o.export(model, out, (64, 96))
    other = p2o.other_inputs(model, (64, 96))
    assert other['input_ids'].shape[1] != inputs['input_ids'].shape[1]
    outputs = p2o.run_onnxruntime(out, inputs)
    assert len(outputs) == 3 * 5  # cls_logits, bbox_preds, centerness for P3-P7
    assert p2o.verify(model, out, [inputs, other]) < 1e-4


def test_fiber_with_deformable_convolutions_is_refused(tmp_path):
    """FIBER's reference DyHead (``use_dcn=True``) has no onnxruntime op: a clear error, no file."""
    model = build(tiny_fiber_config(use_dcn=True))
    with pytest.raises(RuntimeError, match='use_dcn=False'):
        p2o.export(model, str(tmp_path / 'fiber_dcn.onnx'), (64, 96))
    assert not osp.exists(tmp_path / 'fiber_dcn.onnx')
