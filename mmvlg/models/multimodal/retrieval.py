"""The image-text retrieval protocol: what a model implements so that :class:`~mmvlg.engine.RetrievalValLoop`
can rank a whole gallery with it.

Retrieval in the papers is two-stage: a dual encoder scores every (image, text) pair by the dot product of
their embeddings, then a fusion encoder re-scores each query's top-k candidates (FIBER's ITM re-ranking,
X-VLM's ITM on the ITC top-k, SOHO's ITM classifier). The loop runs each image and each text through the
model exactly once and caches what the model returns; the re-scoring reads the cache, never the raw images.

A model takes part by implementing :class:`ImageTextRetrievalMixin`:

* :meth:`~ImageTextRetrievalMixin.encode_images` ``(inputs, data_samples) -> dict``: per image of a batch,
  ``embed`` (bs, D), L2-normalized, plus whatever its fusion encoder needs later (e.g. image tokens
  (bs, N, C) and their mask); every value has the batch on its first dimension;
* :meth:`~ImageTextRetrievalMixin.encode_texts` ``(texts, device) -> dict``: per text, ``embed`` (n, D) plus
  what the fusion encoder needs (e.g. ``input_ids`` and ``attention_mask`` (n, L));
* :meth:`~ImageTextRetrievalMixin.score_pairs` ``(image_feats, text_feats) -> (n,)``: fused scores of n
  row-aligned (image, text) pairs, given the cached features of those rows (collated by
  :func:`collate_cached`, which pads every tensor to the longest of the chosen rows), only needed when
  ``retrieval_cfg['k'] > 0``;
* or, instead of the two, :meth:`~ImageTextRetrievalMixin.encode_batch` ``(inputs, data_samples) ->
  (image dict, text dict)`` when the dual encoder runs images and texts in one forward;
* ``retrieval_cfg``: ``k`` (candidates re-scored per query, 0 for the dual encoder alone), ``weight``
  (multiplier of the fused score) and ``batch_size`` (pairs per fused forward).

:func:`rescore_topk` does the two-stage ranking from those pieces.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.structures import SampleList
from torch import Tensor

CachedFeats = Dict[str, Tensor]

# Keys whose padding is True (a padded position is padding); everything else pads with 0.
PAD_TRUE_KEYS = ('padding_mask', )


def split_cached(feats: CachedFeats, rows: Optional[Sequence[int]] = None) -> List[CachedFeats]:
    """One dict per row of a batch of features (tensors moved to the CPU): every row, or only ``rows``."""
    if rows is None:
        rows = range(len(next(iter(feats.values()))))
    return [{k: v[i].detach().cpu() for k, v in feats.items()} for i in rows]


def collate_cached(items: Sequence[CachedFeats], device=None) -> CachedFeats:
    """Stack per-row cached features into a batch, padding every dimension of every key to the largest of
    ``items`` (with True for the keys in :data:`PAD_TRUE_KEYS`, 0 otherwise).

    Args:
        items (list[dict]): Per-row features (as :func:`split_cached` gives them).
        device: Where to put the batch.

    Returns:
        dict: Each key (n, *max_shape).
    """
    out = {}
    for key in items[0]:
        values = [it[key] for it in items]
        shape = [max(v.shape[d] for v in values) for d in range(values[0].dim())]
        pad_value = True if key in PAD_TRUE_KEYS else 0
        batch = values[0].new_full((len(values), *shape), pad_value)
        for i, v in enumerate(values):
            batch[(i, *[slice(0, s) for s in v.shape])] = v
        out[key] = batch.to(device) if device is not None else batch
    return out


def rescore_topk(sim: Tensor, score_fn: Callable[[Tensor, Tensor], Tensor], k: int, weight: float = 1.0
                 ) -> Tuple[Tensor, Tensor]:
    """Two-stage ranking: for every query, its k best candidates by ``sim`` get ``sim + weight * fused score``
    and rank before all the others, which keep their ``sim`` order.

    Args:
        sim (Tensor): (n_img, n_text) dual-encoder similarities.
        score_fn (callable): ``(image_rows, text_cols) -> (n,)`` fused scores of the pairs
            (``image_rows[i]``, ``text_cols[i]``), long tensors of equal length.
        k (int): Candidates re-scored per query (0: ``sim`` unchanged).
        weight (float): Multiplier of the fused score.

    Returns:
        tuple: (n_img, n_text) scores for text retrieval (image queries, rows ranked) and for image retrieval
        (text queries, columns ranked).
    """
    if k <= 0:
        return sim, sim
    out = []
    for transpose in (False, True):
        s = sim.t() if transpose else sim  # rows are the queries
        kk = min(k, s.shape[1])
        top = s.topk(kk, dim=1).indices
        q = torch.arange(s.shape[0], device=s.device)[:, None].expand_as(top).reshape(-1)
        c = top.reshape(-1)
        img, txt = (c, q) if transpose else (q, c)
        fused = score_fn(img, txt).to(s)
        shift = (s.max() - s.min()) + (weight * fused.abs().max() if len(fused) else 0) + 1
        new = s - shift
        new[q, c] = s[q, c] + weight * fused
        out.append(new.t() if transpose else new)
    return out[0], out[1]


class ImageTextRetrievalMixin:
    """The retrieval protocol (see the module docstring). Mix into a model and implement
    :meth:`encode_images`, :meth:`encode_texts` and, for re-scoring, :meth:`score_pairs`."""

    retrieval_cfg: Dict = dict(k=0, weight=1.0, batch_size=64)

    def encode_batch(self, inputs: Tensor, data_samples: SampleList) -> Tuple[CachedFeats, CachedFeats]:
        """The image features and the text features (``data_samples[i].text``) of a preprocessed batch; by
        default :meth:`encode_images` and :meth:`encode_texts`. A model whose dual encoder runs both at once
        (FIBER's backbone with fusion off) overrides this instead."""
        return (self.encode_images(inputs, data_samples),
                self.encode_texts([ds.text for ds in data_samples], inputs.device))

    def encode_images(self, inputs: Tensor, data_samples: SampleList) -> CachedFeats:
        """Per-image features of a preprocessed batch: ``embed`` (bs, D) and what :meth:`score_pairs` needs."""
        raise NotImplementedError(f'{type(self).__name__} does not implement encode_images')

    def encode_texts(self, texts: Sequence[str], device=None) -> CachedFeats:
        """Per-text features: ``embed`` (n, D) and what :meth:`score_pairs` needs."""
        raise NotImplementedError(f'{type(self).__name__} does not implement encode_texts')

    def score_pairs(self, image_feats: CachedFeats, text_feats: CachedFeats) -> Tensor:
        """(n,) fused scores of n row-aligned (image, text) pairs from their cached features."""
        raise NotImplementedError(f'{type(self).__name__} cannot re-score pairs (set retrieval_cfg.k=0)')

    def similarity(self, image_feats: CachedFeats, text_feats: CachedFeats) -> Tensor:
        """(n_img, n_text) dual-encoder scores: the dot products of the (normalized) embeddings."""
        return image_feats['embed'].float() @ text_feats['embed'].float().t()

    def rank_gallery(self, images: Sequence[CachedFeats], texts: Sequence[CachedFeats],
                     device=None) -> Tuple[Tensor, Tensor]:
        """Score a whole gallery: the dual-encoder similarities, then the top-k of every query re-scored by
        :meth:`score_pairs` in chunks of ``retrieval_cfg['batch_size']`` (see :func:`rescore_topk`).

        Args:
            images (list[dict]): Cached features of each gallery image (row i).
            texts (list[dict]): Cached features of each text (column j).
            device: Where the fused forwards run.

        Returns:
            tuple: (n_img, n_text) text-retrieval and image-retrieval scores (on the CPU).
        """
        cfg = dict(ImageTextRetrievalMixin.retrieval_cfg, **self.retrieval_cfg)
        embeds_i = collate_cached([{'embed': f['embed']} for f in images])
        embeds_t = collate_cached([{'embed': f['embed']} for f in texts])
        sim = self.similarity(embeds_i, embeds_t).cpu()
        step = max(1, int(cfg['batch_size']))

        @torch.no_grad()
        def score_fn(img: Tensor, txt: Tensor) -> Tensor:
            scores = []
            for s in range(0, len(img), step):
                rows, cols = img[s:s + step].tolist(), txt[s:s + step].tolist()
                scores.append(self.score_pairs(collate_cached([images[r] for r in rows], device),
                                               collate_cached([texts[c] for c in cols], device)).cpu())
            return torch.cat(scores) if scores else sim.new_zeros(0)

        return rescore_topk(sim, score_fn, int(cfg['k']), float(cfg['weight']))


__all__ = ['ImageTextRetrievalMixin', 'rescore_topk', 'collate_cached', 'split_cached']
