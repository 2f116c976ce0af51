import ast
import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import mmvlg
from mmvlg.models.language_models import HFTextEncoder, build_word_tokenizer
from mmvlg.models.utils import spans_to_positive_map

TINY = dict(model_type='bert', hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)


def test_word_tokenizer_offsets():
    tok = build_word_tokenizer(['the', 'red', 'circle', 'left', 'of'])
    enc = tok(['The red circle, left of it'], return_offsets_mapping=True)
    tokens = tok.convert_ids_to_tokens(enc['input_ids'][0])
    assert tokens == ['[CLS]', 'the', 'red', 'circle', 'left', 'of', '[UNK]', '[SEP]']  # ',' stripped (issue 15)
    assert enc['offset_mapping'][0][3] == (8, 14)


def test_encoder_from_config_and_vocab_file(tmp_path):
    vocab = tmp_path / 'vocab.txt'
    vocab.write_text('the\nsquare\nblue\n')
    enc = HFTextEncoder(model_config=TINY, tokenizer=dict(type='word', vocab_file=str(vocab)), max_length=8)
    out = enc(['the blue square', 'the square'])
    assert out['embeds'].shape == (2, 5, 16)
    assert out['mask'].tolist() == [[True] * 5, [True] * 4 + [False]]
    assert out['offsets'].shape == (2, 5, 2)
    assert out['pooled'].shape == (2, 16)
    with pytest.raises(ValueError, match='empty'):
        enc(['the square', '  '])


def test_encoder_errors(tmp_path):
    with pytest.raises(ValueError, match='exactly one'):
        HFTextEncoder()
    with pytest.raises(FileNotFoundError, match='nothing.txt'):
        HFTextEncoder(model_config=TINY, tokenizer=dict(type='word', vocab_file=str(tmp_path / 'nothing.txt')))


def test_pretrained_from_local_folder(tmp_path):
    """The pretrained path (what roberta-base/bert-base configs use) loads tokenizer and weights from a folder."""
    src = HFTextEncoder(model_config=TINY, tokenizer=dict(type='word', vocab='synthref'))
    src.model.save_pretrained(tmp_path / 'lm')
    src.tokenizer.save_pretrained(tmp_path / 'lm')
    loaded = HFTextEncoder(name_or_path=str(tmp_path / 'lm'), frozen=True)
    assert not any(p.requires_grad for p in loaded.parameters())
    src.eval(), loaded.eval()
    a, b = src(['the small red circle']), loaded(['the small red circle'])
    torch.testing.assert_close(a['embeds'], b['embeds'])
    assert torch.equal(a['offsets'], b['offsets'])


def test_pretrained_with_fewer_layers(tmp_path):
    """model_kwargs=dict(num_hidden_layers=k) keeps the folder's first k layers (SOHO's 3-layer Transformer from
    BERT-base), with their weights; a re-initialization (SiRi) loads the same k layers again."""
    src = HFTextEncoder(model_config=dict(TINY, num_hidden_layers=3), tokenizer=dict(type='word', vocab='synthref'))
    src.model.save_pretrained(tmp_path / 'lm')
    src.tokenizer.save_pretrained(tmp_path / 'lm')
    short = HFTextEncoder(name_or_path=str(tmp_path / 'lm'), model_kwargs=dict(num_hidden_layers=2))
    assert short.num_layers == 2
    for i in range(2):
        a, b = src.layers[i].state_dict(), short.layers[i].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    short.init_weights()  # the first call keeps the loaded weights
    with torch.no_grad():
        short.layers[0].output.dense.weight.zero_()
    short._is_init = False
    short.init_weights()
    assert torch.equal(short.layers[0].output.dense.weight, src.layers[0].output.dense.weight)
    with pytest.raises(ValueError, match='model_kwargs'):
        HFTextEncoder(model_config=TINY, tokenizer=dict(type='word', vocab='synthref'), model_kwargs=dict(a=1))


def test_positive_map_from_offsets():
    enc = HFTextEncoder(model_config=TINY, tokenizer=dict(type='word', vocab='synthref'))
    text = 'the red circle left of the blue square'
    tok = enc.tokenize([text])
    pmap = spans_to_positive_map([[[0, 14]], [[23, 38]], [[4, 7], [27, 31]]], tok['offsets'][0], 12)
    assert pmap.shape == (3, 12)
    torch.testing.assert_close(pmap.sum(-1), torch.ones(3))
    torch.testing.assert_close(pmap[0, 1:4], torch.full((3, ), 1 / 3))  # the, red, circle ([CLS] is token 0)
    assert pmap[0, 4:].sum() == 0 and pmap[0, 0] == 0
    assert pmap[2].nonzero().flatten().tolist() == [2, 7]
    raw = spans_to_positive_map([[[0, 3]]], tok['offsets'][0], 12, normalize=False)
    assert raw[0].tolist()[:3] == [0, 1, 0]
    with pytest.raises(ValueError, match='cover no token'):
        spans_to_positive_map([[[60, 70]]], tok['offsets'][0], 12, text=text)


# ------------------------------------------------------------------------------------------- vocabularies
def test_builtin_synthref_vocabulary_is_the_generators():
    """The shipped vocabulary file holds exactly the words SynthRef's generator can write."""
    from mmvlg.datasets.synthref import vocabulary
    from mmvlg.models.language_models import builtin_vocabularies, resolve_vocab
    from mmvlg.models.language_models.hf_text_encoder import VOCAB_DIR
    assert 'synthref' in builtin_vocabularies()
    assert resolve_vocab('synthref') == vocabulary()
    with open(osp.join(VOCAB_DIR, 'synthref.txt')) as f:
        assert f.read() == '\n'.join(vocabulary()) + '\n'
    assert resolve_vocab(['a', 'b']) == ['a', 'b']
    with pytest.raises(ValueError, match='unknown built-in vocabulary'):
        resolve_vocab('no-such-vocabulary')


def test_models_package_does_not_import_datasets():
    """Neither an import statement of mmvlg/models (at any level) nor building a word-tokenizer encoder reaches
    mmvlg.datasets."""
    root = osp.join(osp.dirname(mmvlg.__file__), 'models')
    offenders = []
    for path in glob.glob(osp.join(root, '**', '*.py'), recursive=True):
        with open(path) as f:
            tree = ast.parse(f.read())
        pkg = osp.relpath(osp.dirname(path), osp.dirname(osp.dirname(mmvlg.__file__))).split(osp.sep)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = pkg[:len(pkg) - node.level + 1] if node.level else []
                names = ['.'.join(base + ([node.module] if node.module else []))]
            offenders += [f'{path}: {n}' for n in names if n == 'mmvlg.datasets' or n.startswith('mmvlg.datasets.')]
    assert not offenders
    code = ('import sys, mmvlg.models\n'
            'from mmvlg.models.language_models import HFTextEncoder\n'
            f'HFTextEncoder(model_config={TINY!r}, tokenizer=dict(type="word", vocab="synthref"))\n'
            'bad = [m for m in sys.modules if m.startswith("mmvlg.datasets")]\n'
            'assert not bad, bad\n')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=300)


# ------------------------------------------------------------------------------------- the encoder's API
TWO_LAYERS = dict(TINY, num_hidden_layers=2)
TEXTS = ['the red circle', 'the small blue square left of the circle']


def _encoder(**kwargs):
    torch.manual_seed(0)
    return HFTextEncoder(model_config=TWO_LAYERS, tokenizer=dict(type='word', vocab='synthref'), **kwargs).eval()


def test_encode_pre_tokenized_and_masked_ids():
    enc = _encoder()
    tok = enc.tokenize(TEXTS)
    a, b = enc(TEXTS), enc.encode(**tok)
    torch.testing.assert_close(a['embeds'], b['embeds'], rtol=0, atol=0)
    assert torch.equal(b['offsets'], tok['offsets']) and torch.equal(b['mask'], tok['attention_mask'].bool())
    masked = tok['input_ids'].clone()
    masked[:, 2] = enc.tokenizer.mask_token_id  # MLM's input: the encoder sees the masked ids
    out = enc.encode(masked, tok['attention_mask'])
    ref = enc.model(input_ids=masked, attention_mask=tok['attention_mask']).last_hidden_state
    torch.testing.assert_close(out['embeds'], ref)
    assert 'offsets' not in out and not torch.allclose(out['embeds'], a['embeds'])
    torch.testing.assert_close(out['pooled'], ref[:, 0])


def test_embed_and_layer_ranges_compose_to_the_whole_encoder():
    enc = _encoder()
    tok = enc.tokenize(TEXTS)
    ids, mask = tok['input_ids'], tok['attention_mask']
    hf = enc.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    emb = enc.embed(ids)
    torch.testing.assert_close(emb, hf.hidden_states[0])
    assert enc.num_layers == 2 and enc.word_embeddings is enc.model.embeddings.word_embeddings
    first = enc.forward_layers(emb, mask, start=0, end=1)
    torch.testing.assert_close(first, hf.hidden_states[1])
    torch.testing.assert_close(enc.forward_layers(first, mask, start=1), hf.last_hidden_state)
    torch.testing.assert_close(enc.encode(ids, mask, end=1)['embeds'], hf.hidden_states[1])
    # one layer by hand: post-norm self-attention over the real tokens, then the FFN
    layer, h = enc.layers[0], emb
    att = layer.attention.self
    q, k, v = (m(h).view(2, -1, 2, 8).transpose(1, 2) for m in (att.query, att.key, att.value))
    logits = (q @ k.transpose(-1, -2) / 8 ** 0.5).masked_fill(~mask.bool()[:, None, None], float('-inf'))
    sa = (logits.softmax(-1) @ v).transpose(1, 2).flatten(2)
    a = layer.attention.output.LayerNorm(layer.attention.output.dense(sa) + h)
    ffn = layer.output.dense(F.gelu(layer.intermediate.dense(a)))
    torch.testing.assert_close(first, layer.output.LayerNorm(ffn + a), rtol=1e-4, atol=1e-5)
    # without the FFN's output LayerNorm, and with a hook on the self-attention branch (FIBER's fusion)
    layer_mask = enc.self_attention_mask(emb, mask)
    raw = enc.forward_layer(0, emb, layer_mask, output_norm=False)
    torch.testing.assert_close(raw, ffn + a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(enc.forward_layer(0, emb, layer_mask, self_attn_fusion=lambda x: x), first)
    zero = enc.forward_layer(0, emb, layer_mask, self_attn_fusion=torch.zeros_like)
    torch.testing.assert_close(zero, layer.feed_forward_chunk(layer.attention.output.LayerNorm(emb)))
    with pytest.raises(ValueError, match='outside'):
        enc.forward_layers(emb, mask, start=1, end=3)


def _cross_attention_by_hand(block, a, ctx, ctx_valid, heads=2):
    s = block.self
    b, n, c = a.shape
    d = c // heads
    q = s.query(a).view(b, n, heads, d).transpose(1, 2)
    k = s.key(ctx).view(b, -1, heads, d).transpose(1, 2)
    v = s.value(ctx).view(b, -1, heads, d).transpose(1, 2)
    logits = (q @ k.transpose(-1, -2) / d ** 0.5).masked_fill(~ctx_valid[:, None, None], float('-inf'))
    out = (logits.softmax(-1) @ v).transpose(1, 2).flatten(2)
    return block.output.LayerNorm(block.output.dense(out) + a)


def test_cross_attention_layers_to_another_modality():
    enc = _encoder(cross_attention=dict(start=1, context_dims=8))
    assert enc.cross_attention_layers == [1]
    keys = {k for k in enc.state_dict() if k.startswith('cross_attns.')}
    assert 'cross_attns.1.self.query.weight' in keys and 'cross_attns.1.output.LayerNorm.weight' in keys
    assert enc.cross_attns['1'].self.key.weight.shape == (16, 8)  # keys/values from the context's width
    linears = [m for m in enc.cross_attns.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 4 and all(float(m.bias.detach().abs().max()) == 0 for m in linears)
    tok = enc.tokenize(TEXTS)
    ids, mask = tok['input_ids'], tok['attention_mask']
    ctx = torch.randn(2, 5, 8)
    ctx_valid = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    out = enc.encode(ids, mask, context=ctx, context_mask=ctx_valid)['embeds']
    # by hand: layer 0 as the plain encoder, layer 1 self-attention -> cross-attention -> FFN
    h = enc.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1]
    layer = enc.layers[1]
    sa = layer.attention(h, enc.self_attention_mask(h, mask))[0]
    ref = layer.feed_forward_chunk(_cross_attention_by_hand(enc.cross_attns['1'], sa, ctx, ctx_valid))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    ctx2 = ctx.clone()
    ctx2[1, 3:] = 100.0  # padded context tokens are not attended to
    torch.testing.assert_close(enc.encode(ids, mask, context=ctx2, context_mask=ctx_valid)['embeds'], out)
    # without a context the encoder is the plain text encoder; a context needs a cross-attention layer
    torch.testing.assert_close(enc.encode(ids, mask)['embeds'], enc.model(input_ids=ids, attention_mask=mask)
                               .last_hidden_state)
    with pytest.raises(ValueError, match='no layer'):
        enc.forward_layers(enc.embed(ids), mask, end=1, context=ctx)
    with pytest.raises(ValueError, match='no cross-attention'):
        enc.forward_layer(0, enc.embed(ids), None, context=ctx)
    # gradients reach the cross-attention, the context and (not frozen) the text layers
    ctx.requires_grad_(True)
    enc.encode(ids, mask, context=ctx, context_mask=ctx_valid)['embeds'].sum().backward()
    assert enc.cross_attns['1'].self.key.weight.grad is not None and ctx.grad.abs().sum() > 0
    assert enc.layers[0].attention.self.query.weight.grad is not None
    with pytest.raises(ValueError, match='must lie in'):
        _encoder(cross_attention=dict(start=2))


def test_cross_attention_starts_fresh_over_pretrained_weights(tmp_path):
    src = _encoder()
    src.model.save_pretrained(tmp_path / 'lm')
    src.tokenizer.save_pretrained(tmp_path / 'lm')
    enc = HFTextEncoder(name_or_path=str(tmp_path / 'lm'), frozen=True, cross_attention=dict(start=0, end=1))
    for k, v in src.model.state_dict().items():
        torch.testing.assert_close(enc.model.state_dict()[k], v, rtol=0, atol=0)
    assert enc.cross_attention_layers == [0] and enc.context_dims == 16
    assert all(p.requires_grad for p in enc.cross_attns.parameters())  # frozen is the text encoder only
    w = enc.cross_attns['0'].self.query.weight.detach().clone()
    assert 0.01 < float(w.std()) < 0.03  # normal(0, initializer_range = 0.02)
    enc.init_weights()
    enc._is_init = False
    enc.init_weights()  # re-initialization (SiRi): the pretrained weights back, the cross-attention redrawn
    assert not torch.equal(enc.cross_attns['0'].self.query.weight, w)
    for k, v in src.model.state_dict().items():
        torch.testing.assert_close(enc.model.state_dict()[k], v, rtol=0, atol=0)
    enc.eval()
    ctx = torch.randn(1, 3, 16, requires_grad=True)
    tok = enc.tokenize(['the red circle'])
    enc.encode(**tok, context=ctx)['embeds'].sum().backward()
    assert ctx.grad is not None and enc.cross_attns['0'].self.value.weight.grad is not None
