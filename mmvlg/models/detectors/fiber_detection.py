"""FIBER's fine-grained detector used for object detection as grounding (arXiv:2206.07643, sections 3.3, 4.1)."""
from typing import List, Sequence

import torch
from mmdet.structures import DetDataSample, SampleList
from mmengine.structures import InstanceData
from torch import Tensor

from mmvlg.registry import MODELS

from ..utils import SCORE_AGGREGATIONS, token_to_class_scores
from .fiber import FIBER


@MODELS.register_module()
class FIBERObjectDetector(FIBER):
    r"""`FIBER <https://arxiv.org/abs/2206.07643>`_ as an object detector: the class names of the data set are
    joined into the text prompt (``"person. bicycle. car. ..."``,
    :class:`~mmvlg.datasets.transforms.DetectionPrompt`) and every box is grounded on its class name's tokens.

    .. code:: text

        class names ─ prompt ─┐
        image ────────────────┴─ FIBER (fusion backbone, FPN, DyHead/ATSS grounding head)
                                    │ token scores (bs, H_l*W_l*A, L) per level
                                    └─ mean/max over each class's tokens ─ class scores (.., C) ─ NMS per class

    Training is the grounding detector's (:class:`FIBER`): each box's ``tokens_positive`` is the span of its class
    name, so the focal loss pushes the anchor's scores up on the class's tokens and down on the others.

    Prediction: for every anchor, the sigmoid of the grounding logits is aggregated over each class's tokens
    (``score_agg``: ``'mean'``, the authors' ``SCORE_AGG: MEAN``, or ``'max'``), then scored as the head does
    (``sqrt(class score * sigmoid(centerness))``, ``test_cfg.score_thr`` on the class score, NMS per class,
    ``max_per_img``). ``pred_instances.labels`` are class indices of the data set, so mmdet's ``CocoMetric``
    reads them directly. Each sample needs the ``class_spans`` metainfo (per class its character spans in
    ``text``; empty for a class that is not in the prompt, which then scores 0).

    Args:
        score_agg (str): ``'mean'`` or ``'max'`` over a class's tokens. Defaults to ``'mean'``.
        **kwargs: :class:`FIBER` arguments (``grounding_task`` is not used).
    """

    def __init__(self, *args, score_agg: str = 'mean', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if score_agg not in SCORE_AGGREGATIONS:
            raise ValueError(f'score_agg must be one of {SCORE_AGGREGATIONS}, got {score_agg!r}')
        self.score_agg = score_agg

    def class_tokens(self, batch_data_samples: SampleList, language_feats: dict) -> List[List[List[int]]]:
        """Per sample, per class, the token indices of its name in the prompt (``[]`` when absent).

        Raises:
            KeyError: A sample without ``class_spans``.
            ValueError: A class in the prompt whose name lost every token to the text encoder's truncation, or
                samples of one batch with different numbers of classes.
        """
        offsets, masks = language_feats['offsets'], language_feats['masks']
        out = []
        for b, ds in enumerate(batch_data_samples):
            spans = ds.metainfo.get('class_spans')
            if spans is None:
                raise KeyError(f'FIBERObjectDetector: sample {ds.metainfo.get("img_id")} has no class_spans '
                               '(add DetectionPrompt to the pipeline and class_spans to the meta keys)')
            tokens = []
            for c, class_spans in enumerate(spans):
                tok = self._tokens([list(s) for s in class_spans], offsets[b], masks.shape[1])
                if class_spans and not tok:
                    raise ValueError(
                        f'FIBERObjectDetector: class {c} (characters {list(class_spans)}) of sample '
                        f'{ds.metainfo.get("img_id")} has no token in the encoded prompt: the prompt of '
                        f'{len(spans)} classes is longer than the text encoder\'s max_length')
                tokens.append(tok)
            out.append(tokens)
        if len({len(t) for t in out}) > 1:
            raise ValueError('FIBERObjectDetector: the samples of a batch have different numbers of classes')
        return out

    def class_logits(self, cls_logits: Sequence[Tensor], class_tokens: List[List[List[int]]]) -> List[Tensor]:
        """Token logits (bs, N_l, L) per level -> logits of the aggregated class probabilities (bs, N_l, C)
        (``-inf`` for a class with no token, so that it never passes a score threshold)."""
        out = []
        for logits in cls_logits:
            probs = logits.sigmoid()
            scores = torch.stack([token_to_class_scores(probs[b], class_tokens[b], self.score_agg)
                                  for b in range(len(class_tokens))])
            out.append(torch.logit(scores))
        return out

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList, rescale: bool = True) -> SampleList:
        """Detections per sample: ``pred_instances`` with ``bboxes`` (n, 4) in original image pixels, ``scores``
        (n,) in decreasing order and ``labels`` (n,) class indices.

        Samples with ``prompt_chunks`` (:class:`~mmvlg.datasets.transforms.DetectionPrompt` with ``chunk_size``)
        are run once per chunk; since every class is in one chunk only, the per-class NMS of each run is that of
        the whole class set, and the merged detections keep the ``test_cfg.max_per_img`` best.
        """
        chunks = [ds.metainfo.get('prompt_chunks') for ds in batch_data_samples]
        if all(c is None for c in chunks):
            results = self._predict_prompt(batch_inputs, batch_data_samples, rescale)
        else:
            if any(c is None for c in chunks) or len({len(c) for c in chunks}) > 1:
                raise ValueError('FIBERObjectDetector: the samples of a batch must all have the same number of '
                                 'prompt_chunks')
            per_chunk = []
            for k in range(len(chunks[0])):
                samples = [DetDataSample(metainfo={**ds.metainfo, **c[k]}) for ds, c in zip(batch_data_samples, chunks)]
                per_chunk.append(self._predict_prompt(batch_inputs, samples, rescale))
            max_per_img = self.bbox_head.test_cfg.get('max_per_img', 100)
            results = []
            for b in range(len(batch_data_samples)):
                merged = InstanceData.cat([res[b] for res in per_chunk])
                results.append(merged[merged.scores.argsort(descending=True)[:max_per_img]])
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _predict_prompt(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                        rescale: bool) -> List[InstanceData]:
        """Detections, sorted by score, for the samples' (single) prompts."""
        feats, language_feats = self.extract_feat(batch_inputs, batch_data_samples)
        cls_logits, bbox_preds, centerness = self.bbox_head(feats, language_feats)
        class_tokens = self.class_tokens(batch_data_samples, language_feats)
        num_classes = len(class_tokens[0])
        identity = {c + 1: [c] for c in range(num_classes)}  # the head's grounding-to-class map, now 1:1
        results = self.bbox_head.predict_by_feat(
            self.class_logits(cls_logits, class_tokens), bbox_preds, centerness,
            batch_img_metas=[ds.metainfo for ds in batch_data_samples],
            batch_token_positive_maps=[identity] * len(batch_data_samples), rescale=rescale)
        return [res[res.scores.argsort(descending=True)] for res in results]
