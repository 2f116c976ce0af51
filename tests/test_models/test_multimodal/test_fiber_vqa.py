"""FIBERVQA uses the image (issue 24): the answer logits depend on the image, the VQA loss reaches the Swin and the
fusion, and with the fusion gates closed the classifier still receives the image features."""
import pytest
import torch

from mmvlg.registry import MODELS
from mmvlg.testing import demo_image_text_batch, tiny_fiber_vqa_config
from mmvlg.utils import register_all_modules

register_all_modules()

QUESTIONS = ['what color is the circle', 'how many squares']


def _model(alpha=None, **backbone):
    torch.manual_seed(0)
    cfg = tiny_fiber_vqa_config()
    cfg['backbone'].update(backbone)
    model = MODELS.build(cfg)
    model.init_weights()
    if alpha is not None:
        for gate in list(model.backbone.i2t_attns) + list(model.backbone.t2i_attns):
            gate.alpha.data.fill_(alpha)
    return model


def _batch(seed, **metainfo):
    return demo_image_text_batch(texts=list(QUESTIONS), img_ids=[0, 1], seed=seed, **metainfo)


def _logits(model, seed):
    model.eval()
    with torch.no_grad():
        return model(**model.data_preprocessor(_batch(seed), False), mode='tensor')


@pytest.mark.parametrize('alpha', [0.0, 1.0])
def test_answer_logits_change_with_the_image_alone(alpha):
    """Same questions, other images: other logits, with the gates closed (0) and open (1)."""
    model = _model(alpha)
    a, b = _logits(model, seed=0), _logits(model, seed=1)
    assert a.shape == (2, 4)
    assert (a - b).abs().max() > 1e-4
    assert torch.equal(a, _logits(model, seed=0))  # deterministic in eval mode


def test_the_fused_text_features_read_the_image_once_the_gates_open():
    """With the text-to-image gates open, the fused text [CLS] (not only the pooled image) depends on the image;
    with every gate at 0 it does not (FIBER's dual-encoder mode)."""
    def text_cls(model, seed):
        model.eval()
        data = model.data_preprocessor(_batch(seed), False)
        tok = model.tokenize(QUESTIONS, data['inputs'].device)
        with torch.no_grad():
            img, valid, text = model.encode(data['inputs'], tok, model.padding_mask(**data), fusion=True)
            return model.pooler(img, valid, text['embeds'])['text_cls']

    closed, opened = _model(0.0), _model(1.0)
    assert torch.allclose(text_cls(closed, 0), text_cls(closed, 1), atol=1e-6)
    assert (text_cls(opened, 0) - text_cls(opened, 1)).abs().max() > 1e-4


def test_with_fusion_off_the_classifier_still_receives_image_features():
    """No fused layer at all (num_fusion_layers=0): the classifier's input holds the pooled image, which changes
    with the image, and the VQA loss still trains the Swin."""
    model = _model(num_fusion_layers=0)
    assert len(model.backbone.t2i_attns) == 0
    model.eval()
    feats = []
    for seed in (0, 1):
        data = model.data_preprocessor(_batch(seed), False)
        with torch.no_grad():
            feats.append(model.fused_cls(data['inputs'], data['data_samples']))
    d = model.pooler.embed_dims if hasattr(model.pooler, 'embed_dims') else feats[0].shape[1] // 2
    text_half, image_half = slice(0, d), slice(d, 2 * d)
    assert torch.allclose(feats[0][:, text_half], feats[1][:, text_half], atol=1e-6)  # same questions
    assert (feats[0][:, image_half] - feats[1][:, image_half]).abs().max() > 1e-4
    model.train()
    batch = _batch(0, answer_labels=[[2], [3]], answer_scores=[[1.0], [1.0]])
    model(**model.data_preprocessor(batch, True), mode='loss')['loss_vqa'].backward()
    assert model.backbone.visual.patch_embed.projection.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('alpha', [0.0, 0.5])
def test_vqa_loss_gradient_reaches_the_swin_and_the_fusion(alpha):
    model = _model(alpha)
    model.train()
    batch = _batch(0, answer_labels=[[2], [3, 0]], answer_scores=[[1.0], [0.6, 0.3]])
    loss = model(**model.data_preprocessor(batch, True), mode='loss')['loss_vqa']
    loss.backward()
    swin = model.backbone.visual
    assert swin.patch_embed.projection.weight.grad.abs().sum() > 0
    assert swin.stages[0].blocks[0].attn.w_msa.qkv.weight.grad.abs().sum() > 0
    for gate in list(model.backbone.i2t_attns) + list(model.backbone.t2i_attns):
        assert gate.alpha.grad is not None and gate.alpha.grad.abs() > 0  # a closed gate can still open
        if alpha:  # an open gate trains its attention
            assert gate.q_proj.weight.grad.abs().sum() > 0 and gate.kv_proj.weight.grad.abs().sum() > 0
