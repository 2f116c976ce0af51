"""FIBER coarse-grained models: pre-training losses (ITC/ITM/MLM), retrieval embeddings and ITM re-ranking, VQA."""
import pytest
import torch

from mmvlg.registry import MODELS
from mmvlg.testing import demo_image_text_batch, tiny_fiber_coarse_config, tiny_fiber_vqa_config
from mmvlg.utils import register_all_modules

register_all_modules()


def _build(cfg):
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_pretrain_losses_and_gradients():
    model = _build(tiny_fiber_coarse_config())
    with torch.no_grad():  # open the gates so the cross-attentions get gradients
        for m in [*model.backbone.i2t_attns, *model.backbone.t2i_attns]:
            m.alpha.fill_(0.5)
    batch = demo_image_text_batch(img_ids=[0, 0, 1, 2], image_shapes=[(48, 48), (48, 48), (40, 48), (48, 32)])
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert {'loss_itc', 'loss_itm', 'loss_mlm', 'acc_itm', 'acc_mlm', 'temperature'} <= set(losses)
    assert all(torch.isfinite(losses[k]) and losses[k] > 0 for k in ('loss_itc', 'loss_itm', 'loss_mlm'))
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad


def test_itm_pairs_from_similarities():
    torch.manual_seed(0)
    sim = torch.randn(4, 4)
    img_ids = torch.tensor([5, 5, 6, 7])
    from mmvlg.models.multimodal import FIBERCoarse
    img_idx, text_idx, labels = FIBERCoarse.itm_pairs(sim, img_ids)
    assert len(img_idx) == len(text_idx) == len(labels) == 12
    assert labels[:4].tolist() == [1] * 4 and labels[4:].sum() == 0
    assert (img_ids[img_idx[:4]] == img_ids[text_idx[:4]]).all()
    assert (img_ids[img_idx[4:]] != img_ids[text_idx[4:]]).all()  # negatives never show the caption's image


def test_loss_weights_from_config():
    cfg = tiny_fiber_coarse_config()
    cfg['itc_head']['loss_weight'] = 0.0
    cfg['mlm_head']['loss_weight'] = 2.0
    model = _build(cfg)
    data = model.data_preprocessor(demo_image_text_batch(), True)
    torch.manual_seed(1)
    losses = model(**data, mode='loss')
    assert losses['loss_itc'] == 0
    model.mlm_head.loss_weight = 1.0
    torch.manual_seed(1)
    assert torch.allclose(model(**data, mode='loss')['loss_mlm'] * 2, losses['loss_mlm'])


def test_retrieval_embeddings_and_rerank():
    model = _build(tiny_fiber_coarse_config(mlm=False))
    model.eval()
    batch = demo_image_text_batch()
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        out = model(**data, mode='predict')
    img = torch.stack([ds.img_embed for ds in out])
    txt = torch.stack([ds.text_embed for ds in out])
    assert img.shape == (4, 32) and torch.allclose(img.norm(dim=1), torch.ones(4), atol=1e-5)
    sim = img @ txt.t()
    texts = [ds.text for ds in out]
    i2t, t2i = model.rerank(sim, data['inputs'], texts, k=2)
    assert i2t.shape == t2i.shape == (4, 4)
    for scores, s, dim in ((i2t, sim, 1), (t2i, sim.t(), 0)):
        s_rows = scores if dim == 1 else scores.t()
        top = s.topk(2, dim=1).indices
        # the re-ranked top-2 of each query are still its first two, ordered by sim + ITM score
        assert torch.equal(s_rows.topk(2, dim=1).indices.sort(dim=1).values, top.sort(dim=1).values)
    q, c = 1, int(sim[1].topk(2).indices[0])
    itm = model.itm_scores(data['inputs'][q:q + 1], None, [texts[c]])
    assert torch.allclose(i2t[q, c], sim[q, c] + itm[0], atol=1e-5)
    # the fusion encoder's score: with the gates at 0 it still reads both modalities through the pooler
    assert model.itm_scores(data['inputs'][:2], None, texts[:2]).shape == (2, )


def test_vqa_model():
    model = _build(tiny_fiber_vqa_config())
    batch = demo_image_text_batch(texts=['what colour is the circle', 'how many squares'], img_ids=[0, 1],
                                  answer_labels=[[2], [3, 0]], answer_scores=[[1.0], [0.6, 0.3]])
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    assert losses['loss_vqa'] > 0
    losses['loss_vqa'].backward()
    assert model.vqa_head.classifier[0].weight.grad is not None
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(batch, False), mode='predict')
        logits = model(**model.data_preprocessor(batch, False), mode='tensor')
    assert logits.shape == (2, 4)
    assert out[0].pred_answer in ('yes', 'no', 'red', 'two')
    batch['data_samples'][0].set_metainfo(dict(answer_labels=[]))  # still present
    del batch['data_samples'][1].answer_scores
    with pytest.raises(KeyError, match='no answer_labels/answer_scores'):
        model(**model.data_preprocessor(batch, True), mode='loss')
