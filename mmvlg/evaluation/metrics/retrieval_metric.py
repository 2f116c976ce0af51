"""Image-text retrieval Recall@K."""
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.fileio import dump
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


def gallery_folds(n_img: int, text_to_image: Sequence[int], num_folds: int) -> List[Tuple[Tensor, Tensor]]:
    """Split a gallery into ``num_folds`` consecutive folds of equal size, each with the texts of its images
    (COCO's 1k test: the 5k test images in five folds of 1000, in the order of the test file).

    Args:
        n_img (int): The number of gallery images (rows).
        text_to_image (Sequence[int]): Each text's ground-truth image row.
        num_folds (int): The number of folds; must divide ``n_img``.

    Returns:
        list[tuple]: per fold, the (n_img / num_folds, ) image rows and the (n_fold_text, ) text columns (the
        texts whose image is in the fold), both long tensors in gallery order.
    """
    if num_folds < 1 or n_img % num_folds:
        raise ValueError(f'RetrievalRecallMetric: num_folds={num_folds} must be a positive divisor of the '
                         f'number of gallery images ({n_img})')
    size = n_img // num_folds
    gt = torch.as_tensor(list(text_to_image), dtype=torch.long)
    folds = []
    for f in range(num_folds):
        rows = torch.arange(f * size, (f + 1) * size)
        cols = torch.nonzero((gt >= f * size) & (gt < (f + 1) * size)).flatten()
        folds.append((rows, cols))
    return folds


def retrieval_recall_folds(i2t_scores: Tensor, text_to_image: Sequence[int], t2i_scores: Optional[Tensor] = None,
                           topk: Sequence[int] = (1, 5, 10), num_folds: int = 1
                           ) -> Tuple[Dict[str, float], List[Dict[str, float]]]:
    """:func:`retrieval_recall` on each fold of the gallery (:func:`gallery_folds`): every query ranked
    against its fold only (the fold's block of the score matrices), the recalls averaged over the folds.

    Args:
        i2t_scores, t2i_scores (Tensor): (n_img, n_text) scores (see :func:`retrieval_recall`).
        text_to_image (Sequence[int]): Each text's ground-truth image row.
        topk (Sequence[int]): The K values.
        num_folds (int): The number of folds (1: the whole gallery).

    Returns:
        tuple: the mean over the folds of each key of :func:`retrieval_recall` (``R_mean`` included), and the
        list of each fold's own figures.
    """
    i2t = torch.as_tensor(i2t_scores)
    t2i = i2t if t2i_scores is None else torch.as_tensor(t2i_scores)
    gt = torch.as_tensor(list(text_to_image), dtype=torch.long)
    if i2t.shape[1] != len(gt):
        raise ValueError(f'retrieval_recall: scores {tuple(i2t.shape)} and {len(gt)} ground-truth images per '
                         'text do not match')
    per_fold = []
    for rows, cols in gallery_folds(i2t.shape[0], gt.tolist(), num_folds):
        per_fold.append(retrieval_recall(i2t[rows][:, cols], (gt[cols] - rows[0]).tolist(), t2i[rows][:, cols],
                                         topk))
    mean = OrderedDict((k, float(np.mean([m[k] for m in per_fold]))) for k in per_fold[0])
    return mean, per_fold


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


def ranked_lists(i2t_scores: Tensor, t2i_scores: Tensor, img_ids: Sequence, text_ids: Sequence,
                 texts: Optional[Sequence[str]] = None, text_to_image: Optional[Sequence[int]] = None,
                 k: Optional[int] = None) -> Dict[str, List[dict]]:
    """The ranked lists of a retrieval set, one per query, best first (what retrieval benchmarks take).

    Args:
        i2t_scores, t2i_scores (Tensor): (n_img, n_text) scores (see :func:`retrieval_recall`).
        img_ids (Sequence): The id of each gallery image (row).
        text_ids (Sequence): The id of each text (column).
        texts (Sequence[str], optional): The texts, copied into the text queries' entries.
        text_to_image (Sequence[int], optional): Each text's ground-truth image row, copied as ``img_id``.
        k (int, optional): Keep the k best of each list. Defaults to the whole gallery.

    Returns:
        dict: ``image_retrieval``: per text query ``text_id`` (with ``text`` and its ``img_id`` when given),
        ``ranked_img_ids`` and their ``scores``; ``text_retrieval``: per image query ``img_id``,
        ``ranked_text_ids`` and ``scores``.
    """
    i2t = torch.as_tensor(i2t_scores, dtype=torch.float64)
    t2i = torch.as_tensor(t2i_scores, dtype=torch.float64)
    n_img, n_text = i2t.shape
    k_img, k_text = min(k or n_img, n_img), min(k or n_text, n_text)
    image_retrieval, text_retrieval = [], []
    scores, order = t2i.t().topk(k_img, dim=1)
    for t in range(n_text):
        entry = dict(text_id=_plain(text_ids[t]))
        if texts is not None:
            entry['text'] = texts[t]
        if text_to_image is not None:
            entry['img_id'] = _plain(img_ids[text_to_image[t]])
        entry.update(ranked_img_ids=[_plain(img_ids[i]) for i in order[t].tolist()], scores=scores[t].tolist())
        image_retrieval.append(entry)
    scores, order = i2t.topk(k_text, dim=1)
    for i in range(n_img):
        text_retrieval.append(dict(img_id=_plain(img_ids[i]),
                                   ranked_text_ids=[_plain(text_ids[t]) for t in order[i].tolist()],
                                   scores=scores[i].tolist()))
    return dict(image_retrieval=image_retrieval, text_retrieval=text_retrieval)


def _plain(value):
    """An id as JSON writes it (tensors and numpy scalars to Python numbers)."""
    return value.item() if hasattr(value, 'item') else value


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

    Keys: ``{prefix}/text_R@K``, ``{prefix}/image_R@K`` and ``{prefix}/R_mean``, in percent like every mmvlg
    metric (see :func:`retrieval_recall`).

    Folds (``num_folds > 1``, COCO's 1k test: ``num_folds=5`` on the 5k test): the gallery's images, in the data
    set's order, are split into consecutive folds of equal size, each with its images' texts; every query is
    ranked against its own fold (the fold's block of the score matrices) and the keys are the means over the
    folds (:func:`retrieval_recall_folds`). The blocks are cut from the scores the loop computed over the whole
    gallery: a model that scores every pair (SOHO's ITM) ranks each fold exactly as on its own, but a dual
    encoder with fused re-scoring of each query's top-k (:func:`~mmvlg.models.multimodal.retrieval.rescore_topk`)
    re-scored the top-k of the whole gallery, not of the fold. Give a second instance of this metric a
    different ``prefix`` (``'retrieval_1k'``) to report both figures.

    Args:
        topk (Sequence[int]): The K values. Defaults to (1, 5, 10).
        num_folds (int): The number of folds of the gallery (see above); it must divide the number of gallery
            images. Defaults to 1 (the whole gallery).
        outfile_prefix (str, optional): If given (``tools/test.py --out PREFIX``), the metrics and the ranked
            lists of every query (:func:`ranked_lists`: the gallery image ids per text, the text ids per image,
            best first, with their scores) are written to ``{outfile_prefix}.retrieval.json``. The ids are
            the data set's ``img_id`` / ``text_id`` (the gallery row / text index when the input has none).
            With folds: ``{outfile_prefix}.retrieval_{num_folds}folds.json``, the mean, each fold's metrics
            (``folds``) and each fold's ranked lists (``fold_lists``).
        dump_topk (int, optional): Length of each dumped list. Defaults to None (the whole gallery).
    """
    default_prefix: Optional[str] = 'retrieval'

    def __init__(self, topk: Sequence[int] = (1, 5, 10), outfile_prefix: Optional[str] = None,
                 dump_topk: Optional[int] = None, collect_device: str = 'cpu', prefix: Optional[str] = None,
                 num_folds: int = 1) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not topk or min(topk) < 1:
            raise ValueError(f'topk must hold positive integers, got {topk}')
        if int(num_folds) != num_folds or num_folds < 1:
            raise ValueError(f'RetrievalRecallMetric: num_folds must be a positive integer, got {num_folds}')
        self.num_folds = int(num_folds)
        if dump_topk is not None and dump_topk < 1:
            raise ValueError(f'dump_topk must be a positive integer or None, got {dump_topk}')
        self.topk = tuple(sorted(set(int(k) for k in topk)))
        self.outfile_prefix = outfile_prefix
        self.dump_topk = dump_topk

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            if 'i2t_scores' in ds:
                self.results.append(dict(i2t_scores=torch.as_tensor(ds['i2t_scores']).cpu(),
                                         t2i_scores=torch.as_tensor(ds['t2i_scores']).cpu(),
                                         text_to_image=list(ds['text_to_image']),
                                         **{k: list(ds[k]) for k in ('img_ids', 'text_ids', 'texts') if k in ds}))
                continue
            for key in ('img_embed', 'text_embed', 'img_id'):
                if key not in ds:
                    raise KeyError(f'RetrievalRecallMetric: sample {ds.get("img_path")} has no "{key}"; the model '
                                   'must be a dual encoder (e.g. FIBERCoarse with an itc_head)')
            self.results.append(dict(img_id=ds['img_id'], text_id=ds.get('text_id'), text=ds.get('text'),
                                     img_embed=ds['img_embed'].detach().float().cpu(),
                                     text_embed=ds['text_embed'].detach().float().cpu()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        if not results:
            raise ValueError('RetrievalRecallMetric: no result to evaluate')
        if 'i2t_scores' in results[0]:
            r = results[0]
            i2t, t2i, text_to_image = r['i2t_scores'], r['t2i_scores'], r['text_to_image']
            img_ids = r.get('img_ids', list(range(i2t.shape[0])))
            text_ids = r.get('text_ids', list(range(i2t.shape[1])))
            texts = r.get('texts')
        else:
            first, text_to_image = group_texts_by_image([r['img_id'] for r in results])
            images = [results[i]['img_embed'] for i in first]
            i2t = t2i = torch.stack(images) @ torch.stack([r['text_embed'] for r in results]).t()
            img_ids = [results[i]['img_id'] for i in first]
            text_ids = [r['text_id'] if r['text_id'] is not None else i for i, r in enumerate(results)]
            texts = [r['text'] for r in results]
        logger = MMLogger.get_current_instance()
        if self.num_folds > 1:
            metrics, per_fold = retrieval_recall_folds(i2t, text_to_image, t2i, self.topk, self.num_folds)
            for f, m in enumerate(per_fold):
                logger.info(f'retrieval fold {f + 1}/{self.num_folds}: '
                            + ', '.join(f'{k} {v:.2f}' for k, v in m.items()))
            logger.info(f'retrieval, mean of {self.num_folds} folds: '
                        + ', '.join(f'{k} {v:.2f}' for k, v in metrics.items()))
            if self.outfile_prefix is not None:
                out = f'{self.outfile_prefix}.retrieval_{self.num_folds}folds.json'
                gt = torch.as_tensor(text_to_image, dtype=torch.long)
                lists = [ranked_lists(i2t[rows][:, cols], t2i[rows][:, cols], [img_ids[i] for i in rows.tolist()],
                                      [text_ids[t] for t in cols.tolist()],
                                      None if texts is None else [texts[t] for t in cols.tolist()],
                                      (gt[cols] - rows[0]).tolist(), self.dump_topk)
                         for rows, cols in gallery_folds(i2t.shape[0], text_to_image, self.num_folds)]
                dump(dict(metrics=dict(metrics), folds=[dict(m) for m in per_fold], fold_lists=lists), out)
                logger.info(f'RetrievalRecallMetric: ranked lists written to {osp.abspath(out)}')
            return metrics
        metrics = retrieval_recall(i2t, text_to_image, t2i, self.topk)
        logger.info('retrieval: ' + ', '.join(f'{k} {v:.2f}' for k, v in metrics.items()))
        if self.outfile_prefix is not None:
            out = f'{self.outfile_prefix}.retrieval.json'
            dump(dict(metrics=dict(metrics), **ranked_lists(i2t, t2i, img_ids, text_ids, texts, text_to_image,
                                                            self.dump_topk)), out)
            logger.info(f'RetrievalRecallMetric: ranked lists written to {osp.abspath(out)}')
        return metrics
