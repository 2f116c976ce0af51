"""The word tokenizer on text outside its vocabulary (issue 15, Inference item 2): punctuation that is not a
token of the vocabulary is stripped by the tokenizer's normalizer (the same step for training data and at
inference), and every word read as [UNK] is warned about once."""
import warnings

import pytest
import torch

from mmvlg.models.language_models import HFTextEncoder
from mmvlg.models.language_models.hf_text_encoder import build_word_tokenizer, resolve_vocab

TINY = dict(model_type='bert', hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)


def tokens(tok, text):
    return tok.convert_ids_to_tokens(tok(text)['input_ids'])


def test_punctuation_is_stripped_unless_in_the_vocabulary():
    tok = build_word_tokenizer(resolve_vocab('synthref'))
    assert tokens(tok, 'The small red circle.') == ['[CLS]', 'the', 'small', 'red', 'circle', '[SEP]']
    assert tokens(tok, 'the circle, left of the "big" square!') == tokens(tok, 'the circle left of the big square')
    enc = tok('the red circle.', return_offsets_mapping=True)
    assert enc['offset_mapping'][1:4] == [(0, 3), (4, 7), (8, 14)]  # offsets stay in the original text
    vqa = build_word_tokenizer(resolve_vocab('synthref') + ['is', 'there', 'a', '?'])
    assert tokens(vqa, 'is there a red circle?')[-2:] == ['?', '[SEP]']  # a vocabulary token is kept
    keep_all = build_word_tokenizer(resolve_vocab('synthref'), strip_punctuation=False)
    assert tokens(keep_all, 'the circle.')[-2:] == ['[UNK]', '[SEP]']


def test_unknown_words_warn_once_per_word():
    enc = HFTextEncoder(model_config=TINY, tokenizer=dict(type='word', vocab='synthref'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = enc.tokenize(['the red cup.', 'the Cup left of the mug'])
        enc.tokenize(['the cup'])
    messages = [str(w.message) for w in caught if 'vocabulary' in str(w.message)]
    assert len(messages) == 2, messages  # 'cup' (any case) once, 'mug' once; the '.' is stripped, no [UNK]
    assert "'cup'" in messages[0] and "'mug'" in messages[1] and '[UNK]' in messages[0]
    unk = enc.tokenizer.unk_token_id
    assert int((out['input_ids'][0] == unk).sum()) == 1
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        enc.tokenize(['the small red circle.'])  # known words and stripped punctuation: no warning


def test_pretrained_style_tokenizer_without_unknowns_is_quiet():
    enc = HFTextEncoder(model_config=TINY, tokenizer=dict(type='word', vocab=['the', 'red', 'circle']))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        ids = enc.tokenize(['the red circle'])['input_ids']
    assert torch.equal(ids[0, 1:4], torch.tensor(enc.tokenizer.convert_tokens_to_ids(['the', 'red', 'circle'])))
    with pytest.warns(UserWarning, match="'blue'"):
        enc.tokenize(['the blue circle'])
