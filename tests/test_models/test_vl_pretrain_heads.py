"""Coarse-grained heads: hard-negative sampling, MLM masking, ITC/ITM/MLM/VQA losses."""
import pytest
import torch
import torch.nn.functional as F

from mmvlg.models.heads import ITCHead, ITMHead, MLMHead, VQAHead, sample_hard_negatives
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
