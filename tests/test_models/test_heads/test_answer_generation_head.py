"""AnswerGenerationHead: the two-stage answer ranking on a hand-made vocabulary (a bigram decoder whose
first-token and full-sequence rankings disagree), the per-answer weights of the loss, the causal mask and
init_from copying the cross layers."""
import math

import pytest
import torch

from mmvlg.models.heads import AnswerGenerationHead
from mmvlg.registry import MODELS
from mmvlg.utils import register_all_modules

register_all_modules()

VOCAB = ['red', 'big', 'dog', 'small', 'cat']
WIDTH = 16


def _decoder_cfg(**model_config):
    return dict(type='HFTextEncoder', max_length=8, tokenizer=dict(type='word', vocab=VOCAB),
                model_config=dict(model_type='bert', hidden_size=WIDTH, num_hidden_layers=4, num_attention_heads=2,
                                  intermediate_size=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                  **model_config))


def _head(**kwargs):
    torch.manual_seed(0)
    head = AnswerGenerationHead(decoder=_decoder_cfg(), **dict(dict(num_layers=2), **kwargs))
    head.init_weights()
    return head.eval()


@torch.no_grad()
def _bigram(head, table):
    """Make the head a bigram model: the logits after token x are ``table[x]`` (every attention and FFN branch
    zeroed, no position embeddings; the untied output matrix solved so that the LM head maps each token's
    hidden state to its row of ``table``)."""
    dec = head.decoder
    emb = dec.model.embeddings
    emb.position_embeddings.weight.zero_()
    emb.token_type_embeddings.weight.zero_()
    for i in range(head.num_layers):
        layer = dec.layers[i]
        for lin in (layer.attention.output.dense, layer.output.dense, dec.cross_attns[str(i)].output.dense):
            lin.weight.zero_()
            lin.bias.zero_()
    vocab = emb.word_embeddings.weight.shape[0]
    ids = torch.arange(vocab)[:, None]
    hidden = dec.embed(ids)
    for i in range(head.num_layers):  # the path of head.forward, context included
        hidden = dec.forward_layer(i, hidden, None, torch.zeros(vocab, 1, WIDTH))
    lm = head.lm_head
    feats = lm.norm(torch.nn.functional.gelu(lm.dense(hidden[:, 0])))  # (V, C): what the output matrix reads
    solution = torch.linalg.lstsq(feats.double(), torch.as_tensor(table).double()).solution  # (C, V)
    lm.decoder.weight.copy_(solution.T.float())
    lm.bias.zero_()


def _table(tok):
    """Bigram log-probabilities: after [CLS] red .5, big .3, small .15; red -> [SEP] .1; big -> dog .9;
    dog -> [SEP] .9; small -> [SEP] .95."""
    ids = {w: tok.convert_tokens_to_ids(w) for w in VOCAB + ['[CLS]', '[SEP]']}
    size = len(tok)
    table = torch.full((size, size), 1e-4)

    def row(prev, probs):
        table[ids[prev]] = 1e-4
        rest = 1.0 - sum(probs.values())
        for w, p in probs.items():
            table[ids[prev], ids[w]] = p
        table[ids[prev], ids['cat']] += rest  # the remaining mass on a word no answer starts with
    row('[CLS]', {'red': 0.5, 'big': 0.3, 'small': 0.15})
    row('red', {'[SEP]': 0.1, 'dog': 0.3})
    row('big', {'dog': 0.9})
    row('dog', {'[SEP]': 0.9})
    row('small', {'[SEP]': 0.95})
    for w in ('cat', '[SEP]'):
        row(w, {'[SEP]': 0.9})
    return table.log(), ids


@pytest.mark.parametrize('add_first_token', [True, False])
def test_rank_two_stages_disagree(add_first_token):
    head = _head(tie_word_embeddings=False, add_first_token=add_first_token)
    table, ids = _table(head.decoder.tokenizer)
    _bigram(head, table)
    answers = ['red', 'big dog', 'small']
    tok = head.decoder.tokenize(answers)
    question = torch.randn(2, 3, WIDTH)
    qmask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    # the decoder is the bigram model: p(first token) as designed
    logits = head(tok['input_ids'][:1, :1], torch.ones(1, 1, dtype=torch.long), question[:1], qmask[:1])
    assert torch.allclose(logits[0, 0].softmax(-1)[ids['red']], torch.tensor(0.5), atol=1e-3)

    # stage 1 alone (k=1): the best first token, "red"
    one = head.rank(question, qmask, tok['input_ids'], tok['attention_mask'], k=1)
    assert one['ids'].tolist() == [[0], [0]]
    assert torch.allclose(one['scores'], torch.ones(2, 1))
    # k=2: stage 1 keeps red (.5) and big (.3); stage 2 prefers "big dog" by its full sequence
    two = head.rank(question, qmask, tok['input_ids'], tok['attention_mask'], k=2)
    assert two['first_ids'].tolist() == [[0, 1], [0, 1]]
    assert torch.allclose(two['first_probs'][0], torch.tensor([0.5, 0.3]), atol=1e-3)
    assert two['ids'].tolist() == [[1, 0], [1, 0]]
    red = math.log(0.5) + math.log(0.1)
    big_dog = math.log(0.3) + math.log(0.9) + math.log(0.9)
    if add_first_token:
        red, big_dog = red + math.log(0.5), big_dog + math.log(0.3)
    expected = torch.tensor([big_dog, red]).softmax(0)
    assert torch.allclose(two['scores'][0], expected, atol=1e-2)
    # k larger than the list is clipped; "small" (first .15) stays out of the top two either way
    three = head.rank(question, qmask, tok['input_ids'], tok['attention_mask'], k=10)
    assert three['ids'].shape == (2, 3) and three['ids'][0, 0].item() == 1


def test_loss_per_answer_weights_and_sequence_nll():
    head = _head(tie_word_embeddings=False)
    table, _ = _table(head.decoder.tokenizer)
    _bigram(head, table)
    tok = head.decoder.tokenize(['red', 'big dog', 'small'])
    nll = head.sequence_nll(tok['input_ids'], tok['attention_mask'], torch.zeros(3, 2, WIDTH))
    expected = -torch.tensor([math.log(0.5) + math.log(0.1), math.log(0.3) + 2 * math.log(0.9),
                              math.log(0.15) + math.log(0.95)])
    assert torch.allclose(nll, expected, atol=1e-2)  # the padding after [SEP] does not count

    question = torch.randn(2, 3, WIDTH)
    qmask = torch.ones(2, 3, dtype=torch.long)
    which = torch.tensor([0, 0, 1])
    w = torch.tensor([0.7, 0.3, 1.0])
    loss = head.loss(question, qmask, tok['input_ids'], tok['attention_mask'], which, w)['loss_vqa']
    assert torch.allclose(loss, (w * expected).sum() / 2, atol=1e-2)
    # a zero weight removes the answer
    w0 = torch.tensor([0.7, 0.0, 1.0])
    loss0 = head.loss(question, qmask, tok['input_ids'], tok['attention_mask'], which, w0)['loss_vqa']
    assert torch.allclose(loss0, (w0 * expected).sum() / 2, atol=1e-2)
    with pytest.raises(ValueError, match='answer rows'):
        head.loss(question, qmask, tok['input_ids'], tok['attention_mask'], which[:2], w)


def test_causal_and_gradients():
    head = _head().train()
    tok = head.decoder.tokenize(['big dog', 'red'])
    question = torch.randn(2, 3, WIDTH, requires_grad=True)
    logits = head(tok['input_ids'], tok['attention_mask'], question)
    changed = tok['input_ids'].clone()
    changed[0, 2] = head.decoder.tokenizer.convert_tokens_to_ids('cat')
    logits2 = head(changed, tok['attention_mask'], question)
    assert torch.allclose(logits[0, :2], logits2[0, :2], atol=1e-5)  # positions 0, 1 never see token 2
    assert not torch.allclose(logits[0, 2:], logits2[0, 2:])
    # the question is read through the cross-attention
    logits3 = head(tok['input_ids'], tok['attention_mask'], question + 1.0)
    assert not torch.allclose(logits, logits3)
    loss = head.loss(question, torch.ones(2, 3), tok['input_ids'], tok['attention_mask'], torch.tensor([0, 1]),
                     torch.ones(2))['loss_vqa']
    loss.backward()
    assert question.grad.abs().sum() > 0
    assert head.decoder.cross_attns['0'].self.query.weight.grad is not None
    # tied LM head: one matrix
    assert head.lm_head.decoder.weight is head.decoder.word_embeddings.weight


@pytest.mark.parametrize('context_dims', [WIDTH, 24])
def test_init_from_copies_the_cross_layers(context_dims):
    torch.manual_seed(1)
    lm = MODELS.build(dict(_decoder_cfg(), cross_attention=dict(start=2, context_dims=context_dims)))
    with torch.no_grad():  # zero-initialized biases and unit norms would compare equal without a copy
        for p in lm.parameters():
            p.add_(torch.randn_like(p))
    head = AnswerGenerationHead(decoder=_decoder_cfg(), num_layers=2)  # context = the question (WIDTH)
    fresh_key = head.decoder.cross_attns['1'].self.key.weight.clone()
    copied = head.init_from(lm, start=2)
    assert copied
    for i in range(2):
        src, dst = lm.layers[2 + i].state_dict(), head.decoder.layers[i].state_dict()
        assert src.keys() == dst.keys()
        assert all(torch.equal(src[k], dst[k]) for k in src)
        src, dst = lm.cross_attns[str(2 + i)].state_dict(), head.decoder.cross_attns[str(i)].state_dict()
        for k in src:
            if context_dims != WIDTH and ('self.key' in k or 'self.value' in k):
                assert not torch.equal(src[k], dst[k]), k  # another width: weight and bias left fresh
            else:
                assert torch.equal(src[k], dst[k]), k
    if context_dims != WIDTH:
        assert torch.equal(head.decoder.cross_attns['1'].self.key.weight, fresh_key)
    assert torch.equal(head.decoder.word_embeddings.weight, lm.word_embeddings.weight)
    assert head.lm_head.decoder.weight is head.decoder.word_embeddings.weight  # still tied after the copy
    with pytest.raises(ValueError, match='layers 3 .. 4'):
        head.init_from(lm, start=3)
    with pytest.raises(ValueError, match='no cross-attention'):
        head.init_from(lm, start=1)


def test_decoder_depth_and_errors():
    head = _head(num_layers=3)
    assert head.decoder.num_layers == 3 and head.decoder.cross_attention_layers == [0, 1, 2]
    with pytest.raises(ValueError, match='num_layers'):
        AnswerGenerationHead(decoder=_decoder_cfg(), num_layers=0)
    tok = head.decoder.tokenize(['red'])
    with pytest.raises(ValueError, match='start token'):
        head.rank(torch.zeros(1, 2, WIDTH), torch.ones(1, 2), tok['input_ids'][:, :1], tok['attention_mask'][:, :1], 1)
