"""Pre-training heads: hard-negative sampling and the ITM batch, MLM masking, ITC/ITM/MLM/VQA losses (reference
values computed by hand), pooling and projection variants, the tied MLM decoder, the answer vocabulary."""
import math
import zlib

import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample

from mmvlg.models.heads import ITCHead, ITMHead, MLMHead, VQAHead, ids_tensor, itm_pairs, sample_hard_negatives
from mmvlg.models.layers import CrossModalPooler, MLPBlock
from mmvlg.models.utils import mask_tokens


def test_hard_negatives_never_the_positive():
    g = torch.Generator().manual_seed(0)
    bs = 6
    # the positive dominates so much that the softmax of every other candidate underflows to 0
    sim = torch.full((bs, bs), -1e4)
    sim.fill_diagonal_(1e4)
    img_ids = torch.tensor([0, 0, 1, 2, 3, 4])  # samples 0 and 1 show the same image
    pos = img_ids[:, None] == img_ids[None]
    for _ in range(200):
        idx, valid = sample_hard_negatives(sim, pos, generator=g)
        assert valid.all()
        assert not pos[torch.arange(bs), idx].any()
    # the hard negative is drawn far more often than an easy one
    sim = torch.zeros(2, 3)
    sim[0, 2] = 5.0
    counts = torch.bincount(torch.stack([sample_hard_negatives(sim, torch.eye(2, 3, dtype=torch.bool), g)[0][0]
                                         for _ in range(300)]), minlength=3)
    assert counts[0] == 0 and counts[2] > 5 * counts[1]
    # a row whose candidates are all positives gets no negative
    idx, valid = sample_hard_negatives(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool), g)
    assert not valid.any()


def test_mask_tokens_bert_80_10_10():
    g = torch.Generator().manual_seed(0)
    bs, length, vocab = 64, 40, 50
    ids = torch.randint(5, vocab, (bs, length), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    attn = torch.ones(bs, length, dtype=torch.long)
    attn[:, 30:] = 0
    ids[:, 30:] = 0
    masked, labels = mask_tokens(ids, attn, mask_token_id=4, special_ids=[0, 1, 2, 3, 4], vocab_size=vocab,
                                 generator=g)
    targets = labels != -100
    assert not targets[:, 0].any() and not targets[:, 30:].any()  # never special or padding tokens
    assert torch.equal(labels[targets], ids[targets]) and torch.equal(masked[~targets], ids[~targets])
    rate = targets.sum().item() / (bs * 29)
    assert 0.12 < rate < 0.19
    t = targets.sum().item()
    n_mask = (masked[targets] == 4).sum().item()
    n_same = (masked[targets] == ids[targets]).sum().item()
    assert 0.7 < n_mask / t < 0.9 and n_same / t < 0.2
    assert not (masked[targets] < 4).any()  # random replacements are never special tokens
    # every text with a maskable token has a target
    masked, labels = mask_tokens(ids[:, :3], attn[:, :3], 4, [0, 1, 2, 3, 4], vocab, generator=g)
    assert ((labels != -100).sum(dim=1) >= 1).all()


def test_itc_loss_and_temperature():
    torch.manual_seed(0)
    head = ITCHead(img_dims=8, text_dims=6, embed_dims=16)
    img, txt = head(torch.randn(4, 5, 8), None, torch.randn(4, 3, 6))
    assert img.shape == (4, 16) and torch.allclose(img.norm(dim=1), torch.ones(4))
    losses, sim = head.loss(img, txt)
    ref = (F.cross_entropy(img @ txt.t() / 0.07, torch.arange(4)) + F.cross_entropy(txt @ img.t() / 0.07,
                                                                                      torch.arange(4))) / 2
    assert torch.allclose(losses['loss_itc'], ref) and sim.shape == (4, 4) and not sim.requires_grad
    losses['loss_itc'].backward()
    assert head.temperature.grad is not None
    # two captions of one image: both are targets of that image
    losses, _ = head.loss(img.detach(), txt.detach(), torch.tensor([7, 7, 1, 2]))
    target = torch.tensor([[.5, .5, 0, 0], [.5, .5, 0, 0], [0, 0, 1., 0], [0, 0, 0, 1.]])
    s = img.detach() @ txt.detach().t() / 0.07
    ref = -((F.log_softmax(s, 1) * target).sum(1).mean() + (F.log_softmax(s.t(), 1) * target).sum(1).mean()) / 2
    assert torch.allclose(losses['loss_itc'], ref)
    with torch.no_grad():
        head.temperature.fill_(5.0)
    assert head.tau().item() == 1.0  # clamped


def test_itm_mlm_vqa_heads():
    itm = ITMHead(in_dims=8)
    out = itm.loss(torch.randn(6, 8), torch.tensor([1, 1, 0, 0, 0, 0]))
    assert out['loss_itm'] > 0 and 0 <= out['acc_itm'] <= 1 and itm.score(torch.randn(3, 8)).shape == (3, )
    mlm = MLMHead(in_dims=8, vocab_size=11)
    labels = torch.full((2, 5), -100)
    labels[0, 2] = 7
    out = mlm.loss(torch.randn(2, 5, 8), labels)
    assert out['loss_mlm'] > 0
    out = mlm.loss(torch.randn(2, 5, 8, requires_grad=True), torch.full((2, 5), -100))
    assert out['loss_mlm'] == 0 and out['loss_mlm'].requires_grad
    vqa = VQAHead(in_dims=8, answers=['yes', 'no', 'two'])
    target = vqa.targets([[0, 2], [1]], [[1.0, 0.3], [0.6]])
    assert torch.equal(target, torch.tensor([[1.0, 0.0, 0.3], [0.0, 0.6, 0.0]]))
    feats = torch.randn(2, 8)
    ref = F.binary_cross_entropy_with_logits(vqa(feats), target) * 3
    assert torch.allclose(vqa.loss(feats, target)['loss_vqa'], ref)
    pred = vqa.predict(feats)
    assert pred['answers'][0] in {'yes', 'no', 'two'} and pred['labels'].shape == (2, )
    with pytest.raises(ValueError, match='outside'):
        vqa.targets([[3]], [[1.0]])
    with pytest.raises(ValueError, match='distinct'):
        VQAHead(in_dims=8, answers=['a', 'a'])


# ----------------------------------------------------------------------------- reference values by hand
FIBER_ITC_KEYS = {'temperature', 'proj.text_proj.weight', 'proj.text_proj.bias', 'proj.image_proj.weight',
                  'proj.image_proj.bias', 'proj.text_pooler.dense.weight', 'proj.text_pooler.dense.bias',
                  'proj.image_pooler.dense.weight', 'proj.image_pooler.dense.bias'}


def test_itc_loss_value_by_hand():
    head = ITCHead(img_dims=2, text_dims=2, embed_dims=2, temperature=0.5)
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # s = img @ txt.T / 0.5 = [[2, 1.2], [0, 1.6]]
    i2t = (math.log(math.exp(2) + math.exp(1.2)) - 2 + math.log(1 + math.exp(1.6)) - 1.6) / 2
    t2i = (math.log(math.exp(2) + 1) - 2 + math.log(math.exp(1.2) + math.exp(1.6)) - 1.6) / 2
    losses, sim = head.loss(img, txt)
    assert math.isclose(losses['loss_itc'].item(), (i2t + t2i) / 2, rel_tol=1e-5)
    torch.testing.assert_close(sim, torch.tensor([[2.0, 1.2], [0.0, 1.6]]))


def test_itc_default_pooler_is_fibers_by_hand():
    torch.manual_seed(0)
    head = ITCHead(img_dims=8, text_dims=6, embed_dims=4)
    assert set(head.state_dict()) == FIBER_ITC_KEYS  # the converter's keys (tools/model_converters/fiber_to_mmvlg.py)
    img, txt = torch.randn(2, 5, 8), torch.randn(2, 3, 6)
    valid = torch.tensor([[True] * 5, [True, True, False, False, False]])
    p = head.proj
    t = torch.tanh(p.text_pooler.dense(p.text_proj(txt)[:, 0]))
    img_proj = p.image_proj(img)
    mean = torch.stack([img_proj[0].mean(0), img_proj[1, :2].mean(0)])
    i = torch.tanh(p.image_pooler.dense(mean))
    out_i, out_t = head(img, valid, txt)
    torch.testing.assert_close(out_i, F.normalize(i, dim=-1))
    torch.testing.assert_close(out_t, F.normalize(t, dim=-1))
    # the same numbers as FIBER's CrossModalPooler (FIBERCoarse's fused pooler) with the same weights
    ref = CrossModalPooler(8, 6, 4)
    ref.load_state_dict({k[len('proj.'):]: v for k, v in head.state_dict().items() if k.startswith('proj.')})
    pooled = ref(img, valid, txt)
    full = p(img, valid, txt)
    for k in ('text', 'image', 'text_cls', 'image_cls', 'cls'):
        torch.testing.assert_close(full[k], pooled[k])


def test_itc_pooling_variants_by_hand():
    torch.manual_seed(0)
    img, txt = torch.randn(2, 5, 8), torch.randn(2, 3, 6)
    txt_valid = torch.tensor([[True, True, True], [True, False, False]])
    # X-VLM/ALBEF: first token of each stream, linear projection, no tanh pooler
    head = ITCHead(img_dims=8, text_dims=6, embed_dims=4,
                   pooler=dict(type='DualStreamPooler', image_pooling='cls', tanh_pooler=False, pool_first=True))
    p = head.proj
    assert p.text_pooler is None and not any('pooler' in k for k in head.state_dict())
    out_i, out_t = head(img, None, txt)
    torch.testing.assert_close(out_i, F.normalize(img[:, 0] @ p.image_proj.weight.t() + p.image_proj.bias, dim=-1))
    torch.testing.assert_close(out_t, F.normalize(txt[:, 0] @ p.text_proj.weight.t() + p.text_proj.bias, dim=-1))
    assert 'text' not in p(img, None, txt)
    # mean text pooling over the real tokens, an MLP projection of the text, no image projection (same width)
    head = ITCHead(img_dims=4, text_dims=6, embed_dims=4,
                   pooler=dict(type='DualStreamPooler', text_pooling='mean', image_pooling='mean',
                               text_proj=dict(type='MLPBlock', hidden_dims=10), image_proj=None,
                               tanh_pooler=False))
    p = head.proj
    assert isinstance(p.text_proj, MLPBlock) and isinstance(p.image_proj, torch.nn.Identity)
    out_i, out_t = head(img[..., :4], None, txt, txt_valid)
    mlp = p.text_proj
    proj = mlp[3](F.gelu(F.layer_norm(mlp[0](txt), (10, ), mlp[1].weight, mlp[1].bias)))
    t = torch.stack([proj[0].mean(0), proj[1, 0]])
    torch.testing.assert_close(out_t, F.normalize(t, dim=-1))
    torch.testing.assert_close(out_i, F.normalize(img[..., :4].mean(1), dim=-1))
    with pytest.raises(ValueError, match='pooling'):
        ITCHead(img_dims=4, text_dims=4, pooler=dict(type='DualStreamPooler', text_pooling='max'))
    with pytest.raises(ValueError, match='no projection'):
        ITCHead(img_dims=8, text_dims=4, embed_dims=4, pooler=dict(type='DualStreamPooler', image_proj=None))


def test_itm_linear_and_mlp_by_hand():
    torch.manual_seed(0)
    feats, labels = torch.randn(4, 6), torch.tensor([1, 0, 0, 1])
    itm = ITMHead(in_dims=6)
    assert set(itm.state_dict()) == {'fc.weight', 'fc.bias'}  # FIBER's
    logits = feats @ itm.fc.weight.t() + itm.fc.bias
    p = logits.softmax(-1)
    ref = -torch.stack([p[i, labels[i]].log() for i in range(4)]).mean()
    out = itm.loss(feats, labels)
    torch.testing.assert_close(out['loss_itm'], ref)
    assert out['acc_itm'] == (logits.argmax(1) == labels).float().mean()
    # X-VLM's MLP: Linear(6, 12) - LayerNorm - GELU - Linear(12, 2)
    itm = ITMHead(in_dims=6, hidden_dims=12, loss_weight=0.5)
    assert set(itm.state_dict()) == {'fc.0.weight', 'fc.0.bias', 'fc.1.weight', 'fc.1.bias', 'fc.3.weight',
                                     'fc.3.bias'}
    fc = itm.fc
    h = fc[0](feats)
    h = (h - h.mean(-1, keepdim=True)) / torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + 1e-5)
    h = h * fc[1].weight + fc[1].bias
    h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
    logits = fc[3](h)
    torch.testing.assert_close(itm(feats), logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(itm.score(feats), logits[:, 1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(itm.loss(feats, labels)['loss_itm'], 0.5 * F.cross_entropy(logits, labels),
                               rtol=1e-5, atol=1e-6)


def test_mlm_tied_decoder_by_hand():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(11, 8)
    mlm = MLMHead(in_dims=8, vocab_size=11, tie_word_embeddings=True)
    assert mlm.tie_word_embeddings
    mlm.tie_weights(emb)
    assert mlm.decoder.weight is emb.weight
    with torch.no_grad():
        mlm.bias.copy_(torch.arange(11.0) / 10)
    tokens = torch.randn(2, 5, 8)
    labels = torch.full((2, 5), -100)
    labels[0, 1], labels[1, 3] = 7, 2
    h = F.layer_norm(F.gelu(mlm.dense(tokens)), (8, ), mlm.norm.weight, mlm.norm.bias, eps=1e-12)
    logits = h @ emb.weight.t() + mlm.bias
    torch.testing.assert_close(mlm(tokens), logits)
    ref = -(logits[0, 1].log_softmax(-1)[7] + logits[1, 3].log_softmax(-1)[2]) / 2
    out = mlm.loss(tokens, labels)
    torch.testing.assert_close(out['loss_mlm'], ref)
    out['loss_mlm'].backward()
    assert emb.weight.grad is not None and emb.weight.grad.abs().sum() > 0  # the decoder's gradient
    assert set(mlm.state_dict()) == {'dense.weight', 'dense.bias', 'norm.weight', 'norm.bias', 'decoder.weight',
                                     'bias'}  # FIBER's keys, tied or not
    with pytest.raises(ValueError, match='word embeddings'):
        MLMHead(in_dims=8, vocab_size=12).tie_weights(emb)
    # untied (FIBER): the decoder has its own weight
    assert MLMHead(in_dims=8, vocab_size=11).decoder.weight is not emb.weight


def test_mlp_block_and_vqa_classifier_keys():
    torch.manual_seed(0)
    mlp = MLPBlock(4, 6, 3)
    x = torch.randn(2, 4)
    torch.testing.assert_close(mlp(x), mlp[3](F.gelu(F.layer_norm(mlp[0](x), (6, ), mlp[1].weight, mlp[1].bias))))
    assert isinstance(MLPBlock(4, norm_cfg=None)[1], torch.nn.Identity) and MLPBlock(4).out_dims == 4
    vqa = VQAHead(in_dims=4, answers=['yes', 'no', 'two'])
    assert [k for k in vqa.state_dict()] == ['classifier.0.weight', 'classifier.0.bias', 'classifier.1.weight',
                                            'classifier.1.bias', 'classifier.3.weight', 'classifier.3.bias']
    # the same initialization as before (Linear, LayerNorm, GELU, Linear in that order)
    torch.manual_seed(3)
    new = VQAHead(in_dims=4, answers=['yes', 'no', 'two']).state_dict()
    torch.manual_seed(3)
    old = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.GELU(), torch.nn.Linear(4, 3))
    for k, v in old.state_dict().items():
        torch.testing.assert_close(new[f'classifier.{k}'], v, rtol=0, atol=0)


def test_itm_pairs_and_ids_by_hand():
    from mmvlg.models.multimodal.fiber import ids_tensor as old_ids
    from mmvlg.models.multimodal.fiber.fiber_coarse import FIBERCoarse
    assert old_ids is ids_tensor and FIBERCoarse.itm_pairs is itm_pairs  # the old places still work
    # two pairs: each image's only negative is the other text, and each text's the other image
    img_idx, text_idx, labels = itm_pairs(torch.randn(2, 2), torch.tensor([4, 9]))
    assert img_idx.tolist() == [0, 1, 0, 1, 1, 0] and text_idx.tolist() == [0, 1, 1, 0, 0, 1]
    assert labels.tolist() == [1, 1, 0, 0, 0, 0]
    # three pairs, two captions of one image: that image's only negative text is text 2, and image 2's
    # negatives are texts 0/1 (the hard one, 1, by far); no negative pairs an image with its own caption
    sim = torch.tensor([[0., 0., 1.], [0., 0., 1.], [-30., 30., 0.]])
    img_idx, text_idx, labels = itm_pairs(sim, torch.tensor([5, 5, 6]), torch.Generator().manual_seed(0))
    assert img_idx.tolist()[:5] == [0, 1, 2, 0, 1] and text_idx.tolist()[:6] == [0, 1, 2, 2, 2, 1]
    assert labels.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    ids = torch.tensor([5, 5, 6])
    assert not (ids[img_idx[3:]] == ids[text_idx[3:]]).any()
    samples = [DetDataSample(metainfo=dict(img_id=3)), DetDataSample(metainfo=dict(img_id='a/b.jpg')),
               DetDataSample()]
    assert ids_tensor(samples).tolist() == [3, zlib.crc32(b'a/b.jpg') + (1 << 40), -3]


def test_one_answer_list_loader(tmp_path):
    from mmvlg.datasets.validation import AnnotationError
    from mmvlg.datasets.vqa import load_answer_vocab
    from mmvlg.models.heads.vqa_head import load_answer_list as from_head
    from mmvlg.utils.answer_list import load_answer_list
    assert from_head is load_answer_list
    (tmp_path / 'a.json').write_text('["yes", "no", "2"]')
    (tmp_path / 'a.txt').write_text('yes\n\nno\n2\n')
    (tmp_path / 'dup.txt').write_text('yes\nno\nyes\n')
    (tmp_path / 'bad.json').write_text('["yes", ')
    for f in ('a.json', 'a.txt'):
        assert load_answer_list(str(tmp_path / f)) == ['yes', 'no', '2'] == load_answer_vocab(str(tmp_path / f))
    assert VQAHead(in_dims=2, answers=str(tmp_path / 'a.txt')).answers == ['yes', 'no', '2']
    with pytest.raises(ValueError, match='distinct'):
        load_answer_list(str(tmp_path / 'dup.txt'))
    assert load_answer_vocab(str(tmp_path / 'dup.txt')) == ['yes', 'no', 'yes']  # the data set maps to the first
    with pytest.raises(AnnotationError, match='bad.json.*not a valid JSON list'):
        load_answer_vocab(str(tmp_path / 'bad.json'))
    with pytest.raises(ValueError, match='not a valid JSON list'):
        load_answer_list(str(tmp_path / 'bad.json'))
    with pytest.raises(ValueError, match='non-empty strings'):
        load_answer_list(['yes', ''])
    with pytest.raises(FileNotFoundError):
        load_answer_list(str(tmp_path / 'none.txt'))


def test_mlm_head_masking_rules():
    """MLMHead.mask: BERT's Bernoulli rule (the default, the existing mask_tokens) and X-VLM's released rule:
    exactly min(max_masks, max(1, round(n * mask_prob))) targets per text (n: [CLS] and the words), whole
    WordPiece words, never special or padding tokens, 80/10/10."""
    from transformers import BertTokenizerFast

    from mmvlg.models.heads.mlm_head import mask_tokens_by_count
    words = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + [f'w{i}' for i in range(40)] + ['##a', '##b']
    vocab_file = __import__('tempfile').NamedTemporaryFile('w', suffix='.txt', delete=False)
    vocab_file.write('\n'.join(words))
    vocab_file.close()
    tokenizer = BertTokenizerFast(vocab_file.name)
    g = torch.Generator().manual_seed(0)
    bs, length = 200, 14
    ids = torch.randint(5, 45, (bs, length), generator=g)
    ids[:, 0] = 2
    lengths = torch.randint(3, length, (bs,), generator=g)
    attn = (torch.arange(length)[None] < lengths[:, None]).long()
    ids[torch.arange(bs), lengths - 1] = 3  # [SEP]
    ids[attn == 0] = 0
    head = MLMHead(in_dims=8, vocab_size=len(tokenizer), masking=dict(rule='count', mask_prob=0.25, max_masks=3,
                                                                    span_prob=0.0, whole_word=False))
    masked, labels = head.mask(ids, attn, tokenizer, generator=g)
    targets = labels != -100
    n_words = lengths - 2
    expect = torch.clamp(torch.round((n_words + 1).double() * 0.25), min=1, max=3).long()
    expect = torch.minimum(expect, n_words)
    assert torch.equal(targets.sum(dim=1), expect)
    assert not targets[:, 0].any() and not targets[attn == 0].any()
    assert not targets[torch.arange(bs), lengths - 1].any()
    assert torch.equal(labels[targets], ids[targets]) and torch.equal(masked[~targets], ids[~targets])
    frac = (masked[targets] == 4).float().mean()
    assert 0.7 < frac < 0.9 and not (masked[targets] < 4).any()  # random replacements: never special
    # whole words: in "w5 ##a ##b w6" with 3 targets, a chosen piece of the first word brings the whole word
    # (the count then cuts, as the authors' code does); without whole words any 3 of the 4 tokens
    word = torch.tensor([[2, 5, 45, 46, 6, 3]])
    for continuation, low, high in ((head._continuation(tokenizer), 0.7, 1.0), (None, 0.1, 0.4)):
        whole = 0
        for _ in range(200):
            _, lab = mask_tokens_by_count(word, torch.ones_like(word), 4, tokenizer.all_special_ids, len(tokenizer),
                                          mask_prob=0.6, max_masks=8, span_prob=0.0, continuation=continuation,
                                          generator=g)
            t = (lab != -100)[0]
            assert t.sum() == 3
            whole += int(t[1:4].all())
        assert low < whole / 200 <= high
    # spans: with span_prob 1 a chosen token brings its neighbours (up to the count)
    _, lab = mask_tokens_by_count(ids, attn, 4, tokenizer.all_special_ids, len(tokenizer), mask_prob=1.0,
                                  max_masks=4, span_prob=1.0, max_span=3, generator=g)
    assert torch.equal((lab != -100).sum(dim=1), torch.minimum(torch.full((bs,), 4), n_words))
    # the default rule is mask_tokens'
    default = MLMHead(in_dims=8, vocab_size=len(tokenizer))
    a = default.mask(ids, attn, tokenizer, generator=torch.Generator().manual_seed(1))
    b = mask_tokens(ids, attn, 4, tokenizer.all_special_ids, len(tokenizer), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match='masking.rule'):
        MLMHead(in_dims=8, vocab_size=10, masking=dict(rule='spans'))
