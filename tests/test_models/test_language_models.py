import pytest
import torch

from mmvlg.models.language_models import HFTextEncoder, build_word_tokenizer
from mmvlg.models.utils import spans_to_positive_map

TINY = dict(model_type='bert', hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)


def test_word_tokenizer_offsets():
    tok = build_word_tokenizer(['the', 'red', 'circle', 'left', 'of'])
    enc = tok(['The red circle, left of it'], return_offsets_mapping=True)
    tokens = tok.convert_ids_to_tokens(enc['input_ids'][0])
    assert tokens == ['[CLS]', 'the', 'red', 'circle', '[UNK]', 'left', 'of', '[UNK]', '[SEP]']
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
