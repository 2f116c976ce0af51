"""X-VLM image encoders: box-to-patch mapping, mixed attention (ViT), region pooling (Swin), position tables."""
import pytest
import torch

from mmvlg.models.utils import (
    box_patch_ranges,
    interpolate_pos_embed,
    interpolate_relative_position_table,
    masked_mean,
    region_mask_from_boxes,
)
from mmvlg.registry import MODELS
from mmvlg.utils import register_all_modules

register_all_modules()


def _vit(**kwargs):
    cfg = dict(type='XVLMViT', img_size=32, patch_size=8, embed_dims=32, depth=4, num_heads=2, local_attn_depth=2)
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


# ------------------------------------------------------------------ box -> patches
def test_box_patch_ranges_at_borders():
    grid = (4, 4)
    boxes = torch.tensor([
        [0., 0., 1., 1.],  # the whole image
        [0., 0., 0.25, 0.25],  # exactly the first patch
        [0.75, 0.75, 1., 1.],  # exactly the last patch
        [0.3, 0.3, 0.31, 0.31],  # tiny, inside patch (1, 1)
        [0.99, 0.99, 1., 1.],  # tiny, at the bottom-right corner
        [0., 0.5, 0.01, 0.51],  # tiny, at the left border, on a row boundary
        [0.2, 0.1, 0.3, 0.6],  # straddles columns 0-1 and rows 0-2
    ])
    ranges = box_patch_ranges(boxes, grid).tolist()
    assert ranges == [[0, 0, 4, 4], [0, 0, 1, 1], [3, 3, 4, 4], [1, 1, 2, 2], [3, 3, 4, 4], [0, 2, 1, 3],
                      [0, 0, 2, 3]]
    mask = region_mask_from_boxes(boxes, grid)
    assert mask.shape == (7, 17) and mask.dtype == torch.bool
    assert mask[:, 0].all()  # the [CLS]
    assert (mask[:, 1:].sum(1) >= 1).all()
    assert mask[0].all()
    assert mask[1, 1:].nonzero().flatten().tolist() == [0]
    assert mask[2, 1:].nonzero().flatten().tolist() == [15]
    assert mask[3, 1:].nonzero().flatten().tolist() == [5]
    assert mask[6, 1:].nonzero().flatten().tolist() == [0, 1, 4, 5, 8, 9]
    # floating-point products on a boundary (0.3 * 10 = 3.0000000000000004) stay on their patch
    assert box_patch_ranges(torch.tensor([[0.1, 0.1, 0.3, 0.3]]), (10, 10)).tolist() == [[1, 1, 3, 3]]
    # non-square grid, row-major order
    mask = region_mask_from_boxes(torch.tensor([[0.5, 0., 1., 0.5]]), (2, 4), with_cls=False)
    assert mask.tolist() == [[False, False, True, True, False, False, False, False]]


@pytest.mark.parametrize('box,msg', [([0.2, 0.2, 0.2, 0.5], 'zero area'), ([0.5, 0.2, 0.4, 0.6], 'zero area'),
                                     ([-0.1, 0., 0.5, 0.5], 'outside'), ([0.5, 0.5, 1.2, 0.9], 'outside'),
                                     ([0., float('nan'), 0.5, 0.5], 'outside')])
def test_bad_boxes(box, msg):
    with pytest.raises(ValueError, match=msg):
        region_mask_from_boxes(torch.tensor([[0., 0., 1., 1.], box]), (4, 4))
    with pytest.raises(ValueError, match=r'region box 1 .*' + msg):
        _vit().forward_regions(torch.zeros(1, 3, 32, 32), torch.tensor([[0., 0., 1., 1.], box]),
                               torch.tensor([0, 0]))


def test_bad_image_index():
    model = _vit()
    with pytest.raises(ValueError, match='out of range'):
        model.forward_regions(torch.zeros(2, 3, 32, 32), torch.tensor([[0., 0., 1., 1.]]), torch.tensor([2]))
    with pytest.raises(ValueError, match='entries'):
        model.forward_regions(torch.zeros(2, 3, 32, 32), torch.tensor([[0., 0., 1., 1.]]), torch.tensor([0, 1]))


# ------------------------------------------------------------------ ViT mixed attention
def test_mixed_attention_equals_masked_sequence_alone():
    model = _vit()
    torch.manual_seed(1)
    images = torch.randn(2, 3, 32, 32)
    boxes = torch.tensor([[0., 0., 0.5, 0.5], [0.3, 0.1, 0.9, 0.7], [0.6, 0.6, 0.62, 0.64]])
    image_index = torch.tensor([1, 0, 1])
    with torch.no_grad():
        out = model.forward_regions(images, boxes, image_index)
        full = model(images)
    assert out['image'].shape == (2, 17, 32) and out['region'].shape == (3, 17, 32)
    assert (out['image'] - full).abs().max() < 1e-5
    mask = out['region_mask']
    assert torch.equal(mask, region_mask_from_boxes(boxes, (4, 4)))
    split = model.depth - model.local_attn_depth
    for r in range(3):
        with torch.no_grad():
            x, _ = model.embed(images[image_index[r]][None])
            x = model.forward_blocks(x, 0, split)  # full attention: the region copy's input
            # the last blocks alone on the masked sequence, by hand (no SDPA key mask): every query may only
            # see keys inside the region
            for blk in model.blocks[split:]:
                attn = blk.attn
                h = blk.norm1(x)
                q, k, v = attn.qkv(h).reshape(1, 17, 3, 2, 16).permute(2, 0, 3, 1, 4)
                logits = (q @ k.transpose(-1, -2)) / 4.
                logits = logits.masked_fill(~mask[r][None, None, None], float('-inf'))
                a = (logits.softmax(-1) @ v).transpose(1, 2).reshape(1, 17, 32)
                x = x + attn.proj(a)
                x = x + blk.mlp(blk.norm2(x))
            alone = model.norm(x)
        assert (out['region'][r] - alone[0]).abs().max() < 1e-5
        # and the region copy differs from the full image (the mask is active) unless the box is the image
        assert (out['region'][r] - full[image_index[r]]).abs().max() > 1e-4
    # one full pass per image: the first blocks see B sequences, the last ones B + R
    seen = []
    hooks = [blk.register_forward_hook(lambda m, i, o: seen.append(o.size(0))) for blk in model.blocks]
    with torch.no_grad():
        model.forward_regions(images, boxes, image_index)
    for hk in hooks:
        hk.remove()
    assert seen == [2, 2, 5, 5]


def test_mixed_attention_gradients_and_edge_cases():
    model = _vit().train()
    images = torch.randn(2, 3, 32, 32, requires_grad=True)
    out = model.forward_regions(images, torch.tensor([[0., 0., 1., 1.], [0.5, 0.5, 1., 1.]]), torch.tensor([0, 0]))
    (out['image'][:, 0].sum() + out['region'][:, 0].sum()).backward()
    assert images.grad[1].abs().sum() > 0 and model.blocks[0].attn.qkv.weight.grad is not None
    model.eval()
    with torch.no_grad():
        # a whole-image box: its region copy equals the full image
        out = model.forward_regions(images, torch.tensor([[0., 0., 1., 1.]]), torch.tensor([1]))
        assert (out['region'][0] - out['image'][1]).abs().max() < 1e-5
        empty = model.forward_regions(images, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
        assert empty['region'].shape == (0, 17, 32) and empty['region_mask'].shape == (0, 17)
        # valid area: a box normalized by the top-left 16x32 of a padded input
        out = model.forward_regions(images, torch.tensor([[0., 0., 1., 1.]]), torch.tensor([0]),
                                    valid_hw=torch.tensor([[16, 32], [32, 32]]))
        assert out['region_mask'][0, 1:].view(4, 4).tolist() == [[True] * 4] * 2 + [[False] * 4] * 2
    # no mixed attention: region tokens are the image's
    model = _vit(local_attn_depth=0)
    with torch.no_grad():
        out = model.forward_regions(images, torch.tensor([[0., 0., 0.5, 0.5]]), torch.tensor([1]))
    assert torch.equal(out['region'][0], out['image'][1])
    assert int(out['region_mask'].sum()) == 1 + 4


# ------------------------------------------------------------------ position embeddings
def test_pos_embed_interpolation():
    pos = torch.randn(1, 1 + 16, 8)
    assert interpolate_pos_embed(pos, (4, 4)) is pos
    big = interpolate_pos_embed(pos, (6, 8))
    assert big.shape == (1, 1 + 48, 8)
    assert torch.equal(big[:, 0], pos[:, 0])  # [CLS] kept
    # a constant field stays constant (bicubic reproduces constants)
    const = torch.cat([torch.zeros(1, 1, 8), torch.ones(1, 16, 8) * 3], 1)
    assert torch.allclose(interpolate_pos_embed(const, (7, 7))[:, 1:], torch.full((1, 49, 8), 3.), atol=1e-5)
    # round trip up and down of a smooth field is close
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 4), torch.linspace(0, 1, 4), indexing='ij')
    smooth = torch.cat([torch.zeros(1, 1, 1), (xx + yy).reshape(1, 16, 1)], 1)
    back = interpolate_pos_embed(interpolate_pos_embed(smooth, (8, 8)), (4, 4))
    assert (back - smooth).abs().max() < 0.1
    with pytest.raises(ValueError, match='square'):
        interpolate_pos_embed(torch.randn(1, 1 + 15, 8), (4, 4))


def test_vit_other_input_size_and_checkpoint_at_other_resolution():
    model = _vit()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 48, 40)).shape == (2, 1 + 30, 32)
        out = model.forward_regions(torch.randn(1, 3, 48, 40), torch.tensor([[0., 0., 0.5, 0.5]]),
                                    torch.tensor([0]))
    assert out['region_mask'].shape == (1, 31) and int(out['region_mask'].sum()) == 1 + 3 * 3
    with pytest.raises(ValueError, match='multiple of the patch size'):
        model(torch.randn(1, 3, 30, 32))
    # a 32-px checkpoint loaded into a 64-px model: the position embedding is resized at load time
    big = _vit(img_size=64)
    state = model.state_dict()
    big.load_state_dict(state)
    assert torch.allclose(big.pos_embed, interpolate_pos_embed(model.pos_embed, (8, 8)))
    assert torch.equal(big.blocks[3].mlp.fc2.weight, model.blocks[3].mlp.fc2.weight)
    # and at run time a 32-px model on 64-px inputs equals the 64-px model
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        assert (model(x) - big(x)).abs().max() < 1e-5


def test_vit_loads_deit_checkpoint(tmp_path):
    src = _vit()
    deit = {k: v.clone() for k, v in src.state_dict().items()}
    deit['head.weight'], deit['head.bias'] = torch.randn(10, 32), torch.randn(10)
    path = tmp_path / 'deit_tiny.pth'
    torch.save({'model': deit}, path)
    model = _vit(pretrained=str(path), img_size=48)
    for k, v in src.state_dict().items():
        if k != 'pos_embed':
            assert torch.equal(model.state_dict()[k], v), k
    assert model.pos_embed.shape == (1, 1 + 36, 32)
    assert torch.allclose(model.pos_embed, interpolate_pos_embed(src.pos_embed, (6, 6)))
    same = _vit(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    assert torch.equal(same.pos_embed, src.pos_embed)
    with pytest.raises(FileNotFoundError, match='deit_base_patch16_224'):
        _vit(pretrained=str(tmp_path / 'missing.pth'))
    with pytest.raises(ValueError, match='local_attn_depth'):
        _vit(local_attn_depth=5)


# ------------------------------------------------------------------ Swin region pooling and windows
def _swin(**kwargs):
    cfg = dict(type='XVLMSwin', img_size=32, embed_dims=16, depths=(2, 2), num_heads=(1, 2), window_size=4,
               drop_path_rate=0.)
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()
    return model


def test_swin_tokens_and_region_pooling():
    model = _swin()
    assert model.embed_dims == 32
    # stage 1 (4x4 at 32 px) fits in one window of 4: no shift there, as the authors' Swin
    assert [blk.attn.shift_size for s in model.stages for blk in s.blocks] == [0, 2, 0, 0]
    assert [blk.attn.shift_size for s in _swin(shift_single_window=True).stages for blk in s.blocks] == [0, 2, 0, 2]
    images = torch.randn(2, 3, 32, 32)
    boxes = torch.tensor([[0., 0., 0.5, 0.5], [0.1, 0.6, 0.3, 1.], [0., 0., 1., 1.]])
    image_index = torch.tensor([1, 0, 0])
    with torch.no_grad():
        tokens = model(images)
        out = model.forward_regions(images, boxes, image_index)
        last = model.forward_tokens(images)[0]
    assert tokens.shape == (2, 17, 32)
    assert torch.allclose(tokens[:, 0], last.mean(1), atol=1e-6) and torch.equal(tokens[:, 1:], last)
    assert torch.equal(out['image'], tokens)
    # by hand: patches (row, col) inside each box on the 4x4 grid
    inside = [[(r, c) for r in range(2) for c in range(2)], [(r, c) for r in range(2, 4) for c in range(0, 2)],
              [(r, c) for r in range(4) for c in range(4)]]
    for i, cells in enumerate(inside):
        img = int(image_index[i])
        rows = [1 + r * 4 + c for r, c in cells]
        expected = sum(tokens[img, j] for j in rows) / len(rows)
        assert (out['region'][i, 0] - expected).abs().max() < 1e-5
        assert torch.equal(out['region'][i, 1:], tokens[img, 1:])
        assert sorted(out['region_mask'][i].nonzero().flatten().tolist()) == [0] + sorted(rows)
    assert torch.allclose(masked_mean(last, torch.ones(2, 16, dtype=torch.bool)), last.mean(1), atol=1e-6)
    with pytest.raises(ValueError, match='zero area'):
        model.forward_regions(images, torch.tensor([[0.5, 0.5, 0.5, 0.9]]), torch.tensor([0]))


def test_relative_position_table_interpolation():
    table = torch.randn(13 * 13, 4)  # window 7
    assert interpolate_relative_position_table(table, 7) is table
    big = interpolate_relative_position_table(table, 12)
    assert big.shape == (23 * 23, 4)
    const = torch.ones(13 * 13, 2) * torch.tensor([1., -2.])
    assert torch.allclose(interpolate_relative_position_table(const, (12, 12)), torch.ones(23 * 23, 2) *
                          torch.tensor([1., -2.]), atol=1e-5)
    with pytest.raises(ValueError, match=r'\(2w-1\)\^2'):
        interpolate_relative_position_table(torch.randn(12 * 12, 4), 7)


def test_swin_window7_checkpoint_into_window12_model(tmp_path):
    kwargs = dict(embed_dims=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2))
    small = _swin(img_size=224, window_size=7, **kwargs)
    big = _swin(img_size=384, window_size=12, **kwargs)
    state = small.state_dict()
    key = 'stages.2.blocks.1.attn.w_msa.relative_position_bias_table'
    assert state[key].shape == (13 * 13, 2)
    big.load_state_dict(state)  # strict: every key matches after the pre-hook
    assert big.state_dict()[key].shape == (23 * 23, 2)
    assert torch.allclose(big.state_dict()[key], interpolate_relative_position_table(state[key], 12))
    assert big.stages[0].blocks[0].attn.w_msa.relative_position_index.max() == 23 * 23 - 1
    assert torch.equal(big.stages[1].blocks[0].ffn.layers[1].weight, small.stages[1].blocks[0].ffn.layers[1].weight)
    with torch.no_grad():
        assert big(torch.randn(1, 3, 384, 384)).shape == (1, 1 + 144, 64)
    # the same through pretrained= (an mmdet-layout file and an official-layout file under a prefix)
    path = tmp_path / 'swin_w7.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in state.items()}}, path)
    loaded = _swin(img_size=384, window_size=12, pretrained=str(path), **kwargs)
    assert torch.equal(loaded.state_dict()[key], big.state_dict()[key])
    official = {}
    for k, v in state.items():
        if k.endswith('relative_position_index'):
            continue
        k = k.replace('stages', 'layers').replace('attn.w_msa.', 'attn.').replace('ffn.layers.0.0.', 'mlp.fc1.')
        k = k.replace('ffn.layers.1.', 'mlp.fc2.').replace('patch_embed.projection', 'patch_embed.proj')
        official['vision_encoder.' + k.replace('norm3.', 'norm.')] = v
    path = tmp_path / 'xvlm_official.pth'
    torch.save({'model': official}, path)
    model = _swin(img_size=384, window_size=12, init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                                              prefix='vision_encoder.'), **kwargs)
    assert torch.equal(model.norm3.weight, small.norm3.weight)  # the official final norm
    fc1 = 'stages.3.blocks.1.ffn.layers.0.0.weight'
    assert torch.equal(model.state_dict()[fc1], small.state_dict()[fc1])
    assert torch.equal(model.state_dict()[key], big.state_dict()[key])
    with pytest.raises(FileNotFoundError, match='swin_base_patch4_window7_224_22k'):
        _swin(pretrained=str(tmp_path / 'missing.pth'))
