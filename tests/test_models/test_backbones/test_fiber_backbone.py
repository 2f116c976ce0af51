"""FIBER's fusion in the backbone: gated cross-attention, dual-encoder equivalence, interleaving, weights."""
import copy

import pytest
import torch
import torch.nn.functional as F

from mmvlg.models.backbones import load_swin_checkpoint, swin_key_format, swin_to_mmdet
from mmvlg.models.layers import GatedCrossAttention
from mmvlg.registry import MODELS
from mmvlg.testing import tiny_fiber_backbone_config
from mmvlg.utils import register_all_modules

register_all_modules()

TEXTS = ['the small red circle', 'a blue square left of the green circle']


def _build(cfg=None, **kwargs):
    torch.manual_seed(0)
    model = MODELS.build(cfg or tiny_fiber_backbone_config(**kwargs))
    model.init_weights()
    return model.eval()


def _set_alphas(model, value):
    with torch.no_grad():
        for m in [*model.i2t_attns, *model.t2i_attns]:
            m.alpha.fill_(value)


def test_gated_cross_attention_gate_and_mask():
    torch.manual_seed(0)
    layer = GatedCrossAttention(16, 8, num_heads=2, query_norm=True).eval()
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 7, 8)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 4:] = True
    assert torch.equal(layer(x, ctx, pad), x)  # alpha = 0: exactly the input
    layer.alpha.data.fill_(0.5)
    out = layer(x, ctx, pad)
    # same as a hand-written softmax attention that drops the padded keys
    q = layer.q_proj(layer.query_norm(x)).view(2, 5, 2, 8).transpose(1, 2)
    k, v = layer.kv_proj(ctx).split(16, -1)
    k, v = k.view(2, 7, 2, 8).transpose(1, 2), v.view(2, 7, 2, 8).transpose(1, 2)
    logits = (q @ k.transpose(-1, -2) / 8**0.5).masked_fill(pad[:, None, None], float('-inf'))
    ref = x + 0.5 * layer.out_proj((logits.softmax(-1) @ v).transpose(1, 2).flatten(2))
    torch.testing.assert_close(out, ref)
    ctx2 = ctx.clone()
    ctx2[1, 4:] = 100.0  # padded keys do not matter
    torch.testing.assert_close(layer(x, ctx2, pad), out)
    assert torch.isfinite(layer(x, ctx, torch.ones(2, 7, dtype=torch.bool))).all()  # no NaN if all padded
    with pytest.raises(ValueError):
        GatedCrossAttention(10, 8, num_heads=3)


def test_alpha_init_opens_every_gate_and_survives_a_reset():
    cfg = tiny_fiber_backbone_config()
    cfg['alpha_init'] = 0.25
    model = _build(cfg)
    assert model.alphas() == dict(i2t=[0.25, 0.25], t2i=[0.25, 0.25])
    _set_alphas(model, 3.0)
    for m in [*model.i2t_attns, *model.t2i_attns]:
        m.reset_parameters()  # what SiRi's fresh re-initialization calls: back to the configured gate
    assert model.alphas() == dict(i2t=[0.25, 0.25], t2i=[0.25, 0.25])
    img = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # open gates: the text changes the image features from the start
        a = model(img, TEXTS[:1])[0][-1]
        b = model(img, TEXTS[1:])[0][-1]
    assert (a - b).abs().max() > 1e-4


def test_fusion_off_or_zero_alpha_equals_unimodal_backbones():
    model = _build()
    assert model.alphas() == dict(i2t=[0.0, 0.0], t2i=[0.0, 0.0])
    img = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        ref_img, ref_txt = model.visual(img), model.language_model(TEXTS)
        for fusion in (True, False):
            feats, text = model(img, TEXTS, fusion=fusion)
            assert [f.shape for f in feats] == [(2, 32, 8, 10), (2, 64, 4, 5), (2, 128, 2, 3)]
            for f, r in zip(feats, ref_img):
                torch.testing.assert_close(f, r, rtol=0, atol=0)
            torch.testing.assert_close(text['embeds'], ref_txt['embeds'], rtol=0, atol=0)
            assert torch.equal(text['mask'], ref_txt['mask']) and torch.equal(text['offsets'], ref_txt['offsets'])
        # with non-zero gates, fusion off is still the dual encoder
        _set_alphas(model, 1.0)
        feats, text = model(img, TEXTS, fusion=False)
        torch.testing.assert_close(feats[-1], ref_img[-1], rtol=0, atol=0)
        torch.testing.assert_close(text['embeds'], ref_txt['embeds'], rtol=0, atol=0)


def test_nonzero_gates_couple_the_modalities_in_the_top_layers_only():
    model = _build()
    _set_alphas(model, 1.0)
    img = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        feats_a, text_a = model(img, TEXTS)
        feats_b, text_b = model(img, ['the big yellow triangle', 'a blue square left of the green circle'])
        feats_c, text_c = model(img.flip(-1), TEXTS)
    # stage 1 precedes the 2 fused blocks (the last block of stage 2 and the one of stage 3)
    torch.testing.assert_close(feats_a[0], feats_b[0], rtol=0, atol=0)
    assert not torch.allclose(feats_a[1][0], feats_b[1][0]) and not torch.allclose(feats_a[2][0], feats_b[2][0])
    torch.testing.assert_close(feats_a[2][1], feats_b[2][1])  # the other sample's text did not change
    assert not torch.allclose(text_a['embeds'], text_c['embeds'])  # the text sees the image


def test_streams_are_interleaved():
    """Fused step j: Swin block B-N+j attends to the input of text layer L-N+j and vice versa."""
    model = _build(num_fusion_layers=3)
    _set_alphas(model, 0.5)
    seen = {}

    def save(name):
        def hook(module, args, kwargs=None):
            seen[name] = args[0].detach().clone() if args else kwargs['hidden_states'].detach().clone()
        return hook

    blocks, layers = model.blocks[-3:], model.text_layers[-3:]
    handles = []
    for j in range(3):
        handles.append(blocks[j].norm1.register_forward_pre_hook(save(f'img_in{j}')))
        handles.append(layers[j].attention.self.register_forward_pre_hook(save(f'txt_in{j}'), with_kwargs=True))
        handles.append(model.i2t_attns[j].register_forward_pre_hook(
            lambda m, a, j=j: seen.__setitem__(f'i2t_ctx{j}', a[1].detach().clone())))
        handles.append(model.t2i_attns[j].register_forward_pre_hook(
            lambda m, a, j=j: seen.__setitem__(f't2i_ctx{j}', a[1].detach().clone())))
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 80), TEXTS)
    for h in handles:
        h.remove()
    for j in range(3):
        torch.testing.assert_close(seen[f'i2t_ctx{j}'], seen[f'txt_in{j}'])
        torch.testing.assert_close(seen[f't2i_ctx{j}'], seen[f'img_in{j}'])
    assert seen['t2i_ctx2'].shape[-1] == 128 and seen['t2i_ctx0'].shape[-1] == 64  # across the downsampling


def test_gradients_and_checkpointing():
    img = torch.randn(2, 3, 64, 80)
    grads = []
    for with_cp in (False, True):
        cfg = tiny_fiber_backbone_config()
        cfg['with_cp'] = with_cp
        model = _build(cfg).train()
        feats, text = model(img, TEXTS)
        (sum(f.square().mean() for f in feats) + text['embeds'].square().mean()).backward()
        g = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        assert all(float(model.i2t_attns[j].alpha.grad.abs()) > 0 for j in range(2))
        assert all(float(model.t2i_attns[j].alpha.grad.abs()) > 0 for j in range(2))
        grads.append(g)
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-6)


def test_image_padding_mask_reaches_text_to_image_attention():
    model = _build()
    mask = torch.zeros(2, 64, 80, dtype=torch.bool)
    mask[1, :, 40:] = True
    pad = model._image_pad(mask, (4, 5))
    assert pad.shape == (2, 20) and not pad[0].any() and pad[1].view(4, 5)[:, 3:].all()
    assert not pad[1].view(4, 5)[:, :2].any()
    model.mask_image_padding = False
    assert model._image_pad(mask, (4, 5)) is None


def test_num_fusion_layers_is_checked():
    with pytest.raises(ValueError, match='num_fusion_layers'):
        MODELS.build(tiny_fiber_backbone_config(num_fusion_layers=4))  # 3 text layers
    assert len(_build(num_fusion_layers=0).i2t_attns) == 0


def _timm_swin():
    timm = pytest.importorskip('timm')
    torch.manual_seed(1)
    return timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, embed_dim=16, depths=(1, 1, 2, 1),
                             num_heads=(1, 1, 2, 2), num_classes=0).eval()


@pytest.mark.parametrize('fmt', ['timm', 'official', 'mmdet'])
def test_swin_checkpoints_of_every_layout_load(tmp_path, fmt):
    """A timm Swin's weights, saved in each key layout, load into the FIBER backbone's mmdet Swin, which then
    computes the timm model's stage features; the cross-attention parameters keep their initialization."""
    timm_model = _timm_swin()
    state = {k: v for k, v in timm_model.state_dict().items()}
    if fmt == 'official':  # patch merging at the end of a stage
        state = {(k.replace(f'layers.{k.split(".")[1]}.downsample', f'layers.{int(k.split(".")[1]) - 1}.downsample')
                  if '.downsample.' in k else k): v for k, v in state.items()}
    elif fmt == 'mmdet':
        converted, _ = swin_to_mmdet(state, 'timm')
        state = {'state_dict': {f'backbone.{k}': v for k, v in converted.items()}}
    path = tmp_path / f'swin_{fmt}.pth'
    torch.save(state, path)
    assert swin_key_format(torch.load(path)['state_dict'] if fmt == 'mmdet' else torch.load(path)) == fmt

    cfg = tiny_fiber_backbone_config(out_indices=(0, 1, 2, 3))
    cfg['visual_checkpoint'] = str(path)
    model = MODELS.build(cfg)
    fresh = copy.deepcopy({k: v for k, v in model.state_dict().items() if 'attns' in k})
    model.init_weights()
    model.eval()
    for k, v in fresh.items():
        assert torch.equal(model.state_dict()[k], v), k
    img = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        feats, _ = model(img, TEXTS[:1])
        ref = timm_model.forward_intermediates(img, intermediates_only=True, norm=False)
    for f, r in zip(feats, ref):
        r = F.layer_norm(r.permute(0, 2, 3, 1), r.shape[1:2]).permute(0, 3, 1, 2)  # mmdet's out norms at init
        torch.testing.assert_close(f, r, rtol=1e-4, atol=1e-4)


def test_swin_checkpoint_resizes_bias_tables(tmp_path):
    timm_model = _timm_swin()
    path = tmp_path / 'swin.pth'
    torch.save(timm_model.state_dict(), path)
    cfg = tiny_fiber_backbone_config(window_size=5)['visual']
    swin = MODELS.build(cfg)
    missing, unexpected = load_swin_checkpoint(swin, str(path))
    # the official/timm final norm is not one of mmdet's per-output norms (as with mmdet's own loader)
    assert unexpected == ['norm.weight', 'norm.bias'] and all(k.startswith(('norm1.', 'norm2.', 'norm3.'))
                                                              for k in missing)
    assert swin.stages[0].blocks[0].attn.w_msa.relative_position_bias_table.shape == (81, 1)


def test_roberta_weights_load_by_local_path(tmp_path):
    import transformers

    from mmvlg.datasets.synthref import vocabulary
    from mmvlg.models.language_models import build_word_tokenizer
    tokenizer = build_word_tokenizer(vocabulary())
    config = transformers.RobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=3,
                                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(3)
    roberta = transformers.RobertaModel(config, add_pooling_layer=False)
    roberta.eval().save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    cfg = tiny_fiber_backbone_config()
    cfg['language_model'] = dict(type='HFTextEncoder', name_or_path=str(tmp_path), max_length=31)
    model = _build(cfg)
    loaded = model.language_model.model.state_dict()
    for k, v in roberta.state_dict().items():
        torch.testing.assert_close(loaded[k], v, rtol=0, atol=0)
    assert model.alphas() == dict(i2t=[0.0, 0.0], t2i=[0.0, 0.0])
    with torch.no_grad():
        _, text = model(torch.randn(2, 3, 64, 64), TEXTS)
        ref = roberta(**{k: v for k, v in model.language_model.tokenize(TEXTS).items() if k != 'offsets'})
    torch.testing.assert_close(text['embeds'], ref.last_hidden_state)


def test_fused_text_layer_through_the_text_encoder_api():
    """FIBER's text-to-image fusion runs on the text encoder's layer API: ``LN(h + SA + alpha * CA(SA, image))``,
    then the FFN (without its output LayerNorm for the authors' last coarse-grained layer)."""
    model = _build()
    _set_alphas(model, 0.7)
    lm = model.language_model
    tok = lm.tokenize(TEXTS)
    h = lm.embed(tok['input_ids'])
    mask = lm.self_attention_mask(h, tok['attention_mask'])
    cross = model.t2i_attns[0]
    image, pad = torch.randn(2, 6, cross.context_dims), torch.zeros(2, 6, dtype=torch.bool)
    pad[1, 4:] = True
    index = lm.num_layers - model.num_fusion_layers
    layer = lm.layers[index]
    with torch.no_grad():
        att = layer.attention
        sa = att.output.dense(att.self(h, attention_mask=mask)[0])
        a = att.output.LayerNorm(h + sa + 0.7 * cross.attention(sa, image, pad))
        ffn = layer.output.dense(layer.intermediate(a))
        for out_norm, ref in ((True, layer.output.LayerNorm(ffn + a)), (False, ffn + a)):
            out = model._text_layer(index, h, mask, cross, image, pad, out_norm=out_norm)
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
        # without a cross-attention: the encoder's own layer
        torch.testing.assert_close(model._text_layer(0, h, mask), lm.forward_layers(h, tok['attention_mask'], end=1))
