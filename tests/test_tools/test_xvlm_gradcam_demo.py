"""demo/xvlm_gradcam_demo.py writes a picture (heat map beside the image, the best proposal on both), and
GroundingInferencer.attention_map gives a model's Grad-CAM map in original-image pixels."""
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmvlg.apis import GroundingInferencer
from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

DEMO = osp.join(REPO_ROOT, 'demo', 'xvlm_gradcam_demo.py')
WEAK = osp.join(REPO_ROOT, 'configs', 'xvlm', 'xvlm-rec-weak_vit-tiny_bert-tiny_1xb32-3e_synthref.py')


def _demo_module():
    spec = importlib.util.spec_from_file_location('xvlm_gradcam_demo', DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    register_all_modules()
    root = tmp_path_factory.mktemp('gradcam_demo')
    cfg = Config.fromfile(WEAK)
    torch.manual_seed(0)
    checkpoint = str(root / 'weak.pth')
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict(), 'meta': {}}, checkpoint)
    image = str(root / 'scene.png')
    cv2.imwrite(image, np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8))
    return dict(root=root, checkpoint=checkpoint, image=image)


def test_attention_map_of_a_gradcam_model(files):
    # the config's test pipeline has LoadProposals: an annotation step, left out at inference
    inferencer = GroundingInferencer(WEAK, files['checkpoint'], device='cpu')
    heat = inferencer.attention_map(files['image'], 'the small purple triangle')
    assert heat.shape == (48, 80) and heat.dtype == np.float32 and np.isfinite(heat).all() and heat.max() > 0


def test_demo_writes_a_picture(files, capsys):
    demo = _demo_module()
    out = str(files['root'] / 'cam.jpg')
    result = demo.main([files['image'], 'the small purple triangle', WEAK, files['checkpoint'], '--out-file', out,
                        '--device', 'cpu', '--proposals', '0,0,40,24', '40,24,80,48', '10,10,20,20',
                        '--min-size', '0'])
    drawing = cv2.imread(out)
    assert drawing is not None and drawing.shape[1] >= 2 * 80 and drawing.shape[0] > 48
    assert result['bbox'] in ([0, 0, 40, 24], [40, 24, 80, 48], [10, 10, 20, 20])
    assert len(result['scores']) == 3 and result['score'] == max(result['scores'])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])['out_file'] == out
    # from a proposal file; an image the file lacks is an error naming it
    props = files['root'] / 'dets.json'
    props.write_text(json.dumps({'7': [[0, 0, 40, 24], [40, 24, 40, 24]]}))
    result = demo.main([files['image'], 'the red circle', WEAK, files['checkpoint'], '--out-file', out,
                        '--device', 'cpu', '--proposal-file', str(props), '--image-id', '7'])
    assert result['bbox'] in ([0, 0, 40, 24], [40, 24, 80, 48])
    with pytest.raises(KeyError, match='dets.json has no proposals for image 8'):
        demo.main([files['image'], 'the red circle', WEAK, files['checkpoint'], '--out-file', out,
                   '--device', 'cpu', '--proposal-file', str(props), '--image-id', '8'])


def test_inferencer_heatmap_option_and_given_proposals(files):
    inferencer = GroundingInferencer(WEAK, files['checkpoint'], device='cpu')
    proposals = [[0, 0, 40, 24], [40, 24, 80, 48], [10, 10, 20, 20]]
    out_dir = files['root'] / 'heat'
    out = inferencer(files['image'], ['the red circle', 'the small purple triangle'], proposals=proposals, topk=2,
                     heatmap=True, return_vis=True, out_dir=str(out_dir))
    preds = out['predictions'][0]
    assert len(preds) == 2 and all(len(p['bboxes']) == 2 and p['bboxes'][0] in proposals for p in preds)
    # the ranking is the Grad-CAM score of the proposals on the same map that is drawn
    heat = inferencer.attention_map(files['image'], 'the red circle')
    from mmvlg.models.utils import score_proposals
    scores = score_proposals(torch.from_numpy(heat), torch.tensor(proposals, dtype=torch.float32), 0.5)
    assert preds[0]['bboxes'][0] == proposals[int(scores.argmax())]
    drawing = out['visualization'][0][0]  # RGB: the image and its heat map side by side, enlarged to 384
    assert drawing.ndim == 3 and drawing.shape[1] > 2 * 384 and drawing.shape[0] > 384 * 48 // 80
    assert cv2.imread(str(out_dir / 'vis' / 'scene_1.jpg')) is not None
    # without the option: the visualizer's box drawing (one panel)
    plain = inferencer(files['image'], 'the red circle', proposals=proposals, return_vis=True)
    assert plain['visualization'][0][0].shape != drawing.shape
    with pytest.raises(ValueError, match=r'proposals of image 0: expected a \(k, 4\)'):
        inferencer(files['image'], 'the red circle', proposals=[[0, 0, 40]])
    with pytest.raises(ValueError, match='x1 < x2'):
        inferencer(files['image'], 'the red circle', proposals=[[40, 0, 10, 20]])
    with pytest.raises(ValueError, match='2 images but 1 entries in proposals'):
        inferencer([files['image'], files['image']], 'the red circle', proposals=[proposals])
