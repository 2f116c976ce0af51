"""GroundingInferencer's image inputs (issue 15, Inference item 3: every image form, clear errors, BGR arrays)
and FIBER's attention map (issue 15, Inference item 4: fused text-to-image attention recorded by hooks)."""
import os.path as osp
import pathlib

import cv2
import numpy as np
import pytest
import torch

from mmvlg.apis import GroundingInferencer, to_bgr_uint8
from mmvlg.registry import MODELS
from mmvlg.testing import demo_grounding_batch, tiny_fiber_config, tiny_mdetr_config
from mmvlg.utils import register_all_modules
from mmvlg.visualization import FusionAttentionRecorder, fusion_text_to_image_attention

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'), dict(type='PackGroundingInputs')]
HW = (40, 56)


def write_model(root, name, model_cfg):
    register_all_modules()
    config = osp.join(root, f'{name}.py')
    with open(config, 'w') as f:
        f.write(f'model = {model_cfg!r}\ntest_dataloader = dict(dataset=dict(pipeline={PIPELINE!r}))\n')
        f.write("default_scope = 'mmvlg'\n")
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    checkpoint = osp.join(root, f'{name}.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    return config, checkpoint


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('inputs'))
    config, checkpoint = write_model(root, 'mdetr', tiny_mdetr_config(num_queries=4))
    bgr = np.random.default_rng(0).integers(0, 255, (*HW, 3), dtype=np.uint8)
    path = osp.join(root, 'scene.png')
    cv2.imwrite(path, bgr)
    return dict(root=root, inferencer=GroundingInferencer(config, checkpoint, device='cpu'), bgr=bgr, path=path)


def boxes(inferencer, image):
    return np.array(inferencer(image, 'the red circle', topk=2)['predictions'][0][0]['bboxes'])


def test_every_image_form(setup):
    from PIL import Image
    inf, bgr, path = setup['inferencer'], setup['bgr'], setup['path']
    ref = boxes(inf, path)
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    same = [pathlib.Path(path), bgr, Image.fromarray(rgb), np.concatenate([bgr, np.full((*HW, 1), 255, np.uint8)], 2),
            bgr.astype(np.uint16) * 257, bgr.astype(np.float32) / 255.0]
    for image in same:
        np.testing.assert_allclose(boxes(inf, image), ref, atol=1e-3, err_msg=type(image).__name__)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    for image in (gray, gray[..., None], Image.fromarray(gray)):  # (H, W) used to raise IndexError
        out = boxes(inf, image)
        assert out.shape == (2, 4) and np.isfinite(out).all()
    np.testing.assert_allclose(boxes(inf, gray), boxes(inf, gray[..., None]), atol=1e-5)
    assert to_bgr_uint8(Image.fromarray(rgb))[0, 0].tolist() == bgr[0, 0].tolist()  # PIL is RGB, converted
    out = inf([pathlib.Path(path), gray], 'the red circle', return_vis=True)
    assert [len(v) for v in out['visualization']] == [1, 1]


def test_clear_errors(setup, tmp_path):
    inf = setup['inferencer']
    with pytest.raises(FileNotFoundError, match='missing.png'):
        inf(str(tmp_path / 'missing.png'), 'the red circle')
    fake = tmp_path / 'notes.jpg'
    fake.write_text('not an image')
    with pytest.raises(Exception, match='notes.jpg.*not a readable image'):
        inf(str(fake), 'the red circle')
    with pytest.raises(ValueError, match=r'shape \(4, 5, 6, 3\)'):
        inf(np.zeros((4, 5, 6, 3), np.uint8), 'the red circle')
    with pytest.raises(ValueError, match=r'shape \(8, 8, 2\)'):
        inf(np.zeros((8, 8, 2), np.uint8), 'the red circle')
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        inf(np.full((8, 8, 3), 7.5, np.float32), 'the red circle')
    with pytest.raises(TypeError, match='complex'):
        inf(np.zeros((8, 8, 3), np.complex64), 'the red circle')
    with pytest.raises(TypeError, match='got list'):
        to_bgr_uint8([[1, 2]])


def test_fiber_attention_hooks_keep_outputs():
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(tiny_fiber_config()).eval()
    for cross in model.backbone.t2i_attns:
        cross.alpha.data.fill_(0.5)
    data = model.data_preprocessor(demo_grounding_batch(batch_size=2), False)
    captured = []
    handle = model.backbone.t2i_attns[0].register_forward_hook(lambda m, a, o: captured.append((a, o)))
    with torch.no_grad():
        ref = model.extract_feat(data['inputs'], data['data_samples'])
        with FusionAttentionRecorder(model.backbone) as rec:
            out = model.extract_feat(data['inputs'], data['data_samples'])
    handle.remove()
    assert all(torch.equal(a, b) for a, b in zip(ref[0], out[0]))  # the hooks change nothing
    assert len(rec.records) == 2 and not model.backbone.t2i_attns[0]._forward_hooks
    weights, hw = rec.records[0]
    assert weights.shape[-1] == hw[0] * hw[1]
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    (x, context, pad), output = captured[1]  # the second forward, under the recorder
    cross = model.backbone.t2i_attns[0]
    v = cross._heads(cross.kv_proj(context).split(cross.embed_dims, dim=-1)[1])
    again = x + cross.alpha * cross.out_proj((weights @ v).transpose(1, 2).flatten(2))
    torch.testing.assert_close(again, output, atol=1e-5, rtol=1e-4)  # the recorded weights are the ones used
    att = fusion_text_to_image_attention(model, data['inputs'], data['data_samples'], layers=[0, 1])
    assert att.shape == (2, *hw) and torch.isfinite(att).all()
    with pytest.raises(ValueError, match='2 fused layers'):
        fusion_text_to_image_attention(model, data['inputs'], data['data_samples'], layers=[2])


def test_fiber_attention_map_through_inferencer(tmp_path):
    config, checkpoint = write_model(str(tmp_path), 'fiber', tiny_fiber_config())
    inf = GroundingInferencer(config, checkpoint, device='cpu')
    image = np.random.default_rng(1).integers(0, 255, (*HW, 3), dtype=np.uint8)
    att = inf.attention_map(image, 'the small red circle', layers=[1])
    assert att.shape == HW and att.dtype == np.float32 and np.isfinite(att).all() and att.min() >= 0
