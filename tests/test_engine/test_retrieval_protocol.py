"""The image-text retrieval protocol (mmvlg/models/multimodal/retrieval.py) and RetrievalValLoop: features are
computed once and cached, the top-k of every query is re-scored from the cache, and the gallery is built the
same way by the loop and by RetrievalRecallMetric."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mmvlg.evaluation.metrics.retrieval_metric import RetrievalRecallMetric, group_texts_by_image
from mmvlg.models.multimodal.retrieval import ImageTextRetrievalMixin, collate_cached, rescore_topk, split_cached
from mmvlg.testing import demo_image_text_batch, tiny_fiber_coarse_config
from mmvlg.utils import register_all_modules

register_all_modules()


def test_rescore_topk_on_a_hand_made_case():
    sim = torch.tensor([[0.9, 0.8, 0.1],
                        [0.2, 0.7, 0.6]])
    fused = {(0, 0): -1.0, (0, 1): 1.0, (1, 1): 0.0, (1, 2): 0.5,  # image queries' top-2
             (1, 0): 2.0, (0, 2): 0.0}  # the text queries' top-2 (two images: both)

    def score(img, txt):
        return torch.tensor([fused[(i, t)] for i, t in zip(img.tolist(), txt.tolist())])

    i2t, t2i = rescore_topk(sim, score, k=2, weight=1.0)
    # image 0: texts 1 (0.8 + 1) and 0 (0.9 - 1) swap; text 2 stays last
    assert i2t[0].argsort(descending=True).tolist() == [1, 0, 2]
    assert i2t[0, 1] == pytest.approx(1.8) and i2t[0, 0] == pytest.approx(-0.1)
    # image 1: text 2 (0.6 + 0.5) before text 1 (0.7 + 0); text 0 below both
    assert i2t[1].argsort(descending=True).tolist() == [2, 1, 0]
    # text 0: image 1 (0.2 + 2) before image 0 (0.9 - 1)
    assert t2i[:, 0].argsort(descending=True).tolist() == [1, 0]
    assert torch.equal(rescore_topk(sim, score, k=0)[0], sim)


def test_collate_cached_pads_every_dimension():
    items = [dict(ids=torch.tensor([1, 2, 3]), padding_mask=torch.zeros(2, 2, dtype=torch.bool)),
             dict(ids=torch.tensor([4]), padding_mask=torch.zeros(1, 3, dtype=torch.bool))]
    batch = collate_cached(items)
    assert batch['ids'].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch['padding_mask'].tolist() == [[[False, False, True], [False, False, True]],
                                              [[False, False, False], [True, True, True]]]
    assert [x['ids'].tolist() for x in split_cached(batch)] == [[1, 2, 3], [4, 0, 0]]


def test_gallery_is_grouped_by_first_appearance():
    first, text_to_image = group_texts_by_image(['b', 'a', 'b', 'c', 'a'])
    assert first == [0, 1, 3] and text_to_image == [0, 1, 0, 2, 1]
    metric = RetrievalRecallMetric(topk=(1, ))
    embeds = torch.eye(3)
    samples = [dict(img_id=i, img_embed=embeds[r], text_embed=embeds[r]) for i, r in
               (('b', 0), ('a', 1), ('b', 0), ('c', 2), ('a', 1))]
    metric.process(None, samples)
    assert metric.compute_metrics(metric.results)['image_R@1'] == 100.0


class ToyRetrieval(ImageTextRetrievalMixin, nn.Module):
    """A model with nothing but the protocol: an image's embedding is its mean colour, a text's is given;
    the fused score is the number written in the text."""

    retrieval_cfg = dict(k=1, weight=10.0, batch_size=1)

    def __init__(self) -> None:
        super().__init__()
        self.calls = SimpleNamespace(encode=0, score=0)

    def encode_images(self, inputs, data_samples):
        self.calls.encode += 1
        return dict(embed=inputs.mean(dim=(2, 3)))

    def encode_texts(self, texts, device=None):
        return dict(embed=torch.tensor([[float(t.split()[0]), 0.0, 0.0] for t in texts]),
                    bonus=torch.tensor([float(t.split()[1]) for t in texts]))

    def score_pairs(self, image_feats, text_feats):
        self.calls.score += 1
        return text_feats['bonus']


def test_rank_gallery_rescore_from_cache():
    model = ToyRetrieval()
    images = torch.zeros(2, 3, 2, 2)
    images[0, 0] = 1.0
    images[1, 0] = 2.0
    img_feats, txt_feats = model.encode_batch(images, [SimpleNamespace(text='1 0'), SimpleNamespace(text='0 5')])
    i2t, t2i = model.rank_gallery(split_cached(img_feats), split_cached(txt_feats))
    # dual: both images prefer text 0 (embedding 1 vs 0); k=1 keeps it and adds its bonus (0)
    assert i2t.argmax(dim=1).tolist() == [0, 0]
    # text 1's top-1 image gets its bonus 5 * 10: still its first
    assert t2i[:, 1].max() == pytest.approx(0.0 + 50.0)
    assert model.calls.encode == 1 and model.calls.score == 4  # 2 image queries + 2 text queries, batch 1


def test_fiber_gallery_ranking_equals_reranking_the_images():
    """FIBER's protocol (features cached once, fused ITM re-scoring from the cache) gives the scores of
    re-ranking with the preprocessed images themselves."""
    from mmvlg.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(tiny_fiber_coarse_config(mlm=False))
    model.init_weights()
    model.eval()
    model.rerank_cfg.update(k=2, batch_size=3)
    data = model.data_preprocessor(demo_image_text_batch(), False)
    img_feats, txt_feats = model.encode_batch(data['inputs'], data['data_samples'])
    i2t, t2i = model.rank_gallery(split_cached(img_feats), split_cached(txt_feats))
    sim = img_feats['embed'] @ txt_feats['embed'].t()
    ref_i2t, ref_t2i = model.rerank(sim, data['inputs'], [ds.text for ds in data['data_samples']], k=2)
    assert torch.allclose(i2t, ref_i2t, atol=1e-3) and torch.allclose(t2i, ref_t2i, atol=1e-3)
