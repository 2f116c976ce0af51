"""Image-text retrieval Recall@K."""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from torch import Tensor

from mmvlg.registry import METRICS


def retrieval_recall(i2t_scores: Tensor, text_to_image: Sequence[int], t2i_scores: Optional[Tensor] = None,
                     topk: Sequence[int] = (1, 5, 10)) -> Dict[str, float]:
    """Recall@K of image-text retrieval, in percent.

    Args:
        i2t_scores (Tensor): (n_img, n_text) scores of every (image, text) pair (higher is better).
        text_to_image (Sequence[int]): For each text, the row of its image (its ground truth).
        t2i_scores (Tensor, optional): (n_img, n_text) scores for the text-to-image direction when they differ
            (e.g. after re-ranking per query). Defaults to ``i2t_scores``.
        topk (Sequence[int]): The K values.

    Returns:
        dict: ``text_R@K`` (text retrieval: an image query is a hit when one of its texts is among its K best
        texts), ``image_R@K`` (image retrieval: a text query is a hit when its image is among its K best
        images) and ``R_mean``, their mean over both directions and every K.
    """
    i2t = torch.as_tensor(i2t_scores, dtype=torch.float64)
    t2i = i2t if t2i_scores is None else torch.as_tensor(t2i_scores, dtype=torch.float64)
    gt = torch.as_tensor(list(text_to_image), dtype=torch.long)
    n_img, n_text = i2t.shape
    if t2i.shape != i2t.shape or len(gt) != n_text:
        raise ValueError(f'retrieval_recall: scores {tuple(i2t.shape)}/{tuple(t2i.shape)} and {len(gt)} '
                         'ground-truth images per text do not match')
    if len(gt) and (gt.min() < 0 or gt.max() >= n_img):
        raise ValueError(f'retrieval_recall: ground-truth image rows must be in [0, {n_img})')
    owns = torch.zeros(n_img, n_text, dtype=torch.bool)
    owns[gt, torch.arange(n_text)] = True
    # rank of the best ground truth: 1 + the number of candidates scored strictly higher
    best_text = torch.where(owns, i2t, torch.tensor(-float('inf'), dtype=i2t.dtype)).max(dim=1).values
    text_rank = (i2t > best_text[:, None]).sum(dim=1) + 1
    has_text = owns.any(dim=1)  # images without any text are not queries
    gt_score = t2i[gt, torch.arange(n_text)]
    image_rank = (t2i > gt_score[None, :]).sum(dim=0) + 1
    out = OrderedDict()
    for k in topk:
        out[f'text_R@{k}'] = float((text_rank[has_text] <= k).double().mean() * 100) if has_text.any() else 0.0
    for k in topk:
        out[f'image_R@{k}'] = float((image_rank <= k).double().mean() * 100) if n_text else 0.0
    out['R_mean'] = float(np.mean(list(out.values())))
    return out


def group_texts_by_image(img_ids: Sequence) -> Tuple[List[int], List[int]]:
    """The gallery of a retrieval set (shared by this metric and :class:`~mmvlg.engine.RetrievalValLoop`): one
    image per distinct id, in order of first appearance, and each text's image row.

    Args:
        img_ids (list): The image id of every sample (one sample per text), in order.

    Returns:
        tuple: the index of the first sample of each distinct image (the gallery rows), and for every sample
        the gallery row of its image.
    """
    rows: Dict = {}
    first: List[int] = []
    text_to_image: List[int] = []
    for i, img_id in enumerate(img_ids):
        if img_id not in rows:
            rows[img_id] = len(first)
            first.append(i)
        text_to_image.append(rows[img_id])
    return first, text_to_image


@METRICS.register_module()
class RetrievalRecallMetric(BaseMetric):
    """Image-text retrieval Recall@1/5/10 in both directions over a whole test set.

    Two inputs are accepted:

    * per-sample predictions of a dual encoder (``img_embed``, ``text_embed``, ``img_id``, ``text_id``, e.g.
      :meth:`FIBERCoarse.predict <mmvlg.models.multimodal.FIBERCoarse.predict>` in a plain ``ValLoop``): the
      gallery images are the distinct ``img_id`` values, each text's ground truth is its sample's image, and
      the scores are the cosine similarities;
    * one dict with ``i2t_scores``, ``t2i_scores`` (n_img, n_text) and ``text_to_image`` (as
      :class:`~mmvlg.engine.RetrievalValLoop` writes; it ranks with the model's retrieval protocol,
      :class:`~mmvlg.models.multimodal.retrieval.ImageTextRetrievalMixin`).

    Keys: ``{prefix}/text_R@K``, ``{prefix}/image_R@K`` and ``{prefix}/R_mean`` (see :func:`retrieval_recall`).

    Args:
        topk (Sequence[int]): The K values. Defaults to (1, 5, 10).
    """
    default_prefix: Optional[str] = 'retrieval'

    def __init__(self, topk: Sequence[int] = (1, 5, 10), collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not topk or min(topk) < 1:
            raise ValueError(f'topk must hold positive integers, got {topk}')
        self.topk = tuple(sorted(set(int(k) for k in topk)))

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            if 'i2t_scores' in ds:
                self.results.append(dict(i2t_scores=torch.as_tensor(ds['i2t_scores']).cpu(),
                                         t2i_scores=torch.as_tensor(ds['t2i_scores']).cpu(),
                                         text_to_image=list(ds['text_to_image'])))
                continue
            for key in ('img_embed', 'text_embed', 'img_id'):
                if key not in ds:
                    raise KeyError(f'RetrievalRecallMetric: sample {ds.get("img_path")} has no "{key}"; the model '
                                   'must be a dual encoder (e.g. FIBERCoarse with an itc_head)')
            self.results.append(dict(img_id=ds['img_id'], text_id=ds.get('text_id'),
                                     img_embed=ds['img_embed'].detach().float().cpu(),
                                     text_embed=ds['text_embed'].detach().float().cpu()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        if not results:
            raise ValueError('RetrievalRecallMetric: no result to evaluate')
        if 'i2t_scores' in results[0]:
            r = results[0]
            metrics = retrieval_recall(r['i2t_scores'], r['text_to_image'], r['t2i_scores'], self.topk)
        else:
            first, text_to_image = group_texts_by_image([r['img_id'] for r in results])
            images = [results[i]['img_embed'] for i in first]
            sim = torch.stack(images) @ torch.stack([r['text_embed'] for r in results]).t()
            metrics = retrieval_recall(sim, text_to_image, topk=self.topk)
        MMLogger.get_current_instance().info(
            'retrieval: ' + ', '.join(f'{k} {v:.2f}' for k, v in metrics.items()))
        return metrics
