"""X-VLM's referring-expression comprehension (arXiv:2111.08276, section 4.2): supervised, a box regressed from
the cross [CLS] of (image, expression); and weakly supervised, Grad-CAM of a cross layer scoring given proposals.

Both are detectors by type (mmdet's ``BaseDetector`` and mmvlg's ``VisionLanguageMixin``: boxes for an image
and a text, ``pred_instances`` in original-image pixels for ``RefExpMetric``), and both derive from
:class:`~mmvlg.models.multimodal.xvlm.XVLM`, reusing its encoders, heads and parameter names, so that a
pre-trained X-VLM checkpoint (or the box-only warm-up's) loads into them unchanged.
"""
from typing import Dict, List, Tuple

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.structures import SampleList
from mmengine.structures import InstanceData
from torch import Tensor

from mmvlg.registry import MODELS

from ...heads.itm_head import ids_tensor
from ...utils.gradcam import (
    CrossAttentionRecorder,
    gradcam_from_attention,
    heatmap_to_image,
    patch_grid,
    score_proposals,
)
from .xvlm import XVLM


def _where(ds) -> str:
    return f'sample {ds.metainfo.get("img_id")!r} ({ds.metainfo.get("img_path", "no path")})'


@MODELS.register_module()
class XVLMGrounding(XVLM, BaseDetector):
    r"""Supervised referring-expression comprehension with X-VLM: the box head on the cross encoder's [CLS] of
    (image, expression) predicts one normalized (cx, cy, w, h) box, trained with L1 + GIoU (the authors'
    ``Grounding_bbox.py``).

    .. code:: text

        image ─ vision_encoder ─ (B, 1+N, C_v) ─┐
        expression ─ text encoder ─ (B, L, C) ──┴─ cross encoder ─ [CLS] (B, C) ─ bbox_head ─ (B, 4) cx, cy, w, h

    Two stages, as released: a **box-only warm-up** on region-text data (the authors' ``Grounding_bbox_pretrain``:
    COCO and Visual Genome objects and regions, 224 px) and the **fine-tuning** on RefCOCO/+/g (384 px). A batch
    of interface-2 region-text samples (metainfo ``region_texts``, ``gt_instances.bboxes`` one box per region)
    trains the warm-up (:meth:`XVLM.box_losses` on (full image, region text) for every region, the whole-image
    regions only with ``bbox_on_whole_image``); a batch of REC samples (``text`` and one box in
    ``gt_instances``) the fine-tuning. Both give ``loss_bbox`` and ``loss_iou``.

    The box is relative to the valid image (``img_shape``): the configs resize to a square without padding, as
    the authors (``Resize((384, 384))``), so the image tokens hold no padding.

    Args:
        bbox_head (dict): :class:`~mmvlg.models.heads.BoxRegressionHead` (required).
        **kwargs: :class:`~mmvlg.models.multimodal.xvlm.XVLM`'s (``vision_encoder``, ``language_model``, ...);
            the ITC/ITM/MLM heads are usually None here.
    """

    def __init__(self, bbox_head: dict, **kwargs) -> None:
        if bbox_head is None:
            raise ValueError('XVLMGrounding: model.bbox_head is required (the box head on the cross [CLS])')
        super().__init__(bbox_head=bbox_head, **kwargs)

    # ------------------------------------------------------------------------------------------ features
    def extract_feat(self, batch_inputs: Tensor) -> Tensor:
        """(B, 1+N, C_v) image tokens."""
        return self.vision_encoder(batch_inputs)

    def fused_cls(self, inputs: Tensor, data_samples: SampleList) -> Tensor:
        """(B, C) the cross encoder's [CLS] of each (image, ``text``) pair."""
        texts = []
        for ds in data_samples:
            text = ds.metainfo.get('text')
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'XVLMGrounding: {_where(ds)} has no expression (metainfo "text": {text!r})')
            texts.append(text)
        image = self.extract_feat(inputs)
        tok = self.tokenize(texts, inputs.device)
        return self.cross_encode(self.encode_text(tok), tok['attention_mask'], image)[:, 0]

    # -------------------------------------------------------------------------------------------- loss
    @staticmethod
    def is_warmup_batch(data_samples: SampleList) -> bool:
        """True for a batch of region-text samples (the box-only warm-up), False for REC samples.

        Raises:
            ValueError: A batch mixing the two.
        """
        flags = ['region_texts' in ds.metainfo for ds in data_samples]
        if any(flags) and not all(flags):
            raise ValueError('XVLMGrounding: a batch mixes region-text samples (warm-up) and referring expressions')
        return bool(flags) and all(flags)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """``loss_bbox`` (L1 on cx, cy, w, h) and ``loss_iou`` (GIoU) of the batch.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) preprocessed images.
            batch_data_samples (list[DetDataSample]): REC samples (``text``, ``gt_instances.bboxes`` (1, 4) px of
                ``img_shape``) or, in the warm-up, region-text samples (``region_texts``, ``region_is_image``,
                ``gt_instances.bboxes`` (n_regions, 4)).
        """
        if self.is_warmup_batch(batch_data_samples):
            regions = self.collect_regions(batch_data_samples, batch_inputs.device)
            return self.box_losses(self.extract_feat(batch_inputs), regions)
        return self.bbox_head.loss(self.fused_cls(batch_inputs, batch_data_samples), batch_data_samples)

    # ------------------------------------------------------------------------------------------ predict
    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList, rescale: bool = True) -> SampleList:
        """Each sample gets ``pred_instances``: ``bboxes`` (1, 4) x1, y1, x2, y2 in pixels of the original image
        (with ``rescale``: divided by ``scale_factor``, clipped to ``ori_shape``), ``scores`` (1,) ones,
        ``labels`` (1,) zeros."""
        results = self.bbox_head.predict(self.fused_cls(batch_inputs, batch_data_samples), batch_data_samples,
                                         rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList = None) -> Tensor:
        """(B, 4) normalized (cx, cy, w, h) boxes."""
        return self.bbox_head(self.fused_cls(batch_inputs, batch_data_samples))


@MODELS.register_module()
class XVLMWeakGrounding(XVLM, BaseDetector):
    r"""Weakly supervised referring-expression comprehension with X-VLM (the authors' ``Grounding.py``): ITC and
    ITM fine-tuning on (image, expression) pairs, no box; at test time Grad-CAM of the ITM match score on one
    cross layer's attention to the image patches scores each proposal box of the image, and the proposals are
    ranked by that score.

    .. code:: text

        (image, expression) ─ cross encoder ─ [CLS] ─ itm_head ─ match logit s
        layer gradcam_layer: cross-attention probabilities A (B, heads, L, 1+N), G = ds / dA
        cam = mean_heads,tokens(A x max(G, 0))[patches] ─ (B, h, w) ─ upsample to the original image (bicubic)
        proposal score = sum(cam inside the box) / area ** proposal_alpha

    Training: the expressions of one image are positives of each other (ITC targets, never ITM negatives): their
    ids come from ``image_id_key`` (the source image's ``original_id`` of the REC data sets).

    Prediction: each sample's ``proposals.bboxes`` (an ``InstanceData``, as MMDetection carries proposals), (k, 4)
    x1, y1, x2, y2 pixels of the original image (:class:`~mmvlg.datasets.transforms.LoadProposals`);
    ``pred_instances`` holds them ranked by score.

    Args:
        gradcam_layer (int): The language model's layer (counted from 0 over all its layers) whose
            cross-attention is used. Defaults to 9: BERT-base's layer 9, the 4th cross layer, the released
            ``block_num: 9``; the paper says the 3rd cross layer (8).
        proposal_alpha (float): The area exponent of the proposal score. Defaults to 0.5 (the authors' alpha).
        image_id_key (str): Metainfo key of the image id that makes positives in training. Defaults to
            ``'original_id'``.
        heatmap_mode (str): Interpolation of the map to the image. Defaults to ``'bicubic'`` (the authors').
        **kwargs: :class:`~mmvlg.models.multimodal.xvlm.XVLM`'s; ``itm_head`` is required.
    """

    def __init__(self, gradcam_layer: int = 9, proposal_alpha: float = 0.5, image_id_key: str = 'original_id',
                 heatmap_mode: str = 'bicubic', **kwargs) -> None:
        super().__init__(**kwargs)
        if self.itm_head is None:
            raise ValueError('XVLMWeakGrounding: model.itm_head is required (Grad-CAM of the ITM score)')
        layers = self.language_model.cross_attention_layers
        if gradcam_layer not in layers:
            raise ValueError(f'XVLMWeakGrounding: gradcam_layer={gradcam_layer} has no cross-attention (the cross '
                             f'layers of model.language_model: {layers})')
        self.gradcam_layer = int(gradcam_layer)
        self.proposal_alpha = float(proposal_alpha)
        self.image_id_key = image_id_key
        self.heatmap_mode = heatmap_mode

    def extract_feat(self, batch_inputs: Tensor) -> Tensor:
        """(B, 1+N, C_v) image tokens."""
        return self.vision_encoder(batch_inputs)

    # -------------------------------------------------------------------------------------------- loss
    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """ITC (``loss_itc``) and ITM (``loss_itm``, ``acc_itm``), and MLM with an ``mlm_head``, on the
        (image, ``text``) pairs; ``temperature`` logged."""
        texts = []
        for ds in batch_data_samples:
            text = ds.metainfo.get('text')
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'XVLMWeakGrounding: {_where(ds)} has no expression (metainfo "text": {text!r})')
            texts.append(text)
        ids = ids_tensor(batch_data_samples, key=self.image_id_key, device=batch_inputs.device)
        losses = self.pair_losses(self.extract_feat(batch_inputs), None, texts, ids)
        if self.itc_head is not None:
            losses['temperature'] = self.itc_head.temperature.detach().clone()
        return losses

    # ---------------------------------------------------------------------------------------- Grad-CAM
    def gradcam(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Tensor:
        """Grad-CAM of the ITM match logit on layer ``gradcam_layer``'s cross-attention, per (image, ``text``).

        Gradients are taken with ``torch.autograd.grad`` (no parameter's ``.grad`` changes), also under
        ``torch.no_grad()``.

        Returns:
            Tensor: (B, h, w) maps (>= 0, detached) on the patch grid of the padded input.
        """
        texts = [ds.metainfo.get('text') or '' for ds in batch_data_samples]
        with torch.enable_grad():
            image = self.extract_feat(batch_inputs).detach()
            tok = self.tokenize(texts, batch_inputs.device)
            text = self.encode_text(tok).detach().requires_grad_(True)
            module = self.language_model.cross_attns[str(self.gradcam_layer)].self
            with CrossAttentionRecorder(module) as rec:
                fused = self.cross_encode(text, tok['attention_mask'], image)
            score = self.itm_head.score(fused[:, 0])
            attention = rec.maps[0]
            grad, = torch.autograd.grad(score.sum(), attention)
        grid = patch_grid(image.shape[1] - 1, batch_inputs.shape[-2:])
        return gradcam_from_attention(attention.detach(), grad, tok['attention_mask'], grid).detach()

    def heatmaps(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> List[Tensor]:
        """Per sample, the Grad-CAM map in pixels of the original image, (H_ori, W_ori)."""
        cams = self.gradcam(batch_inputs, batch_data_samples)
        return [heatmap_to_image(cam, batch_inputs.shape[-2:], ds.img_shape, ds.metainfo.get('ori_shape'),
                                 mode=self.heatmap_mode) for cam, ds in zip(cams, batch_data_samples)]

    # ------------------------------------------------------------------------------------------ predict
    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList, rescale: bool = True) -> SampleList:
        """Rank each sample's ``proposals`` by their Grad-CAM score: ``pred_instances.bboxes`` (k, 4) the proposals
        (original-image pixels) best first, ``scores`` (k,), ``labels`` (k,) zeros.

        Raises:
            KeyError: A sample without ``proposals`` (naming it).
        """
        for ds in batch_data_samples:
            if 'proposals' not in ds:
                raise KeyError(f'XVLMWeakGrounding: {_where(ds)} has no proposals (add LoadProposals to the '
                               'pipeline before PackGroundingInputs)')
        results = []
        for heat, ds in zip(self.heatmaps(batch_inputs, batch_data_samples), batch_data_samples):
            boxes = torch.as_tensor(ds.proposals.bboxes, dtype=torch.float32, device=heat.device).reshape(-1, 4)
            scores = score_proposals(heat, boxes, self.proposal_alpha)
            order = scores.argsort(descending=True, stable=True)
            boxes = boxes[order]
            if not rescale:  # into the network input's pixels
                sx, sy = (ds.metainfo.get('scale_factor') or (1.0, 1.0))[:2]
                boxes = boxes * boxes.new_tensor([sx, sy, sx, sy])
            results.append(InstanceData(bboxes=boxes, scores=scores[order],
                                        labels=torch.zeros(len(order), dtype=torch.long, device=heat.device)))
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList = None) -> Tuple[Tensor]:
        """(B, h, w) Grad-CAM maps on the patch grid (:meth:`gradcam`)."""
        return (self.gradcam(batch_inputs, batch_data_samples), )


__all__: List[str] = ['XVLMGrounding', 'XVLMWeakGrounding']
