"""MDETR's box + soft-token head (also SiRi's 2-token variant)."""
from typing import Dict, List, Optional, Tuple

import torch
from mmdet.models.layers import MLP, inverse_sigmoid
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmdet.utils import reduce_mean
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from mmvlg.registry import MODELS, TASK_UTILS

from ..utils import denormalize_boxes, rescale_boxes, spans_to_positive_map


@MODELS.register_module()
class MDETRHead(BaseModule):
    """Box regression and soft-token classification for every decoder query (MDETR, arXiv:2104.12763),
    with Hungarian matching and auxiliary losses on every decoder layer.

    Two soft-token modes:

    * ``'token'`` (MDETR): each query predicts a distribution over ``num_soft_tokens - 1`` text-token
      positions plus "no object"; the target of a matched query is the box's normalized token map built
      from ``tokens_positive``. Needed for phrase grounding (several phrases per caption).
    * ``'sentence'`` (SiRi, section 3.1): 2 soft tokens, "belongs to the expression" and "no object".

    Args:
        embed_dims (int): Decoder width.
        num_soft_tokens (int): Width of the soft-token logits, "no object" included (256 in MDETR, 2 in
            SiRi).
        soft_token_mode (str): ``'token'`` or ``'sentence'``.
        eos_coef (float): Weight of the "no object" target for unmatched queries. Defaults to 0.1.
        loss_ce_weight (float): Soft-token cross-entropy weight. Defaults to 1.
        loss_bbox (dict): L1 loss on normalized (cx, cy, w, h) boxes. Defaults to weight 5.
        loss_iou (dict): GIoU loss on normalized boxes. Defaults to weight 2.
        contrastive_align (dict, optional): Turns on MDETR's box-token contrastive alignment loss and sizes
            its projections: ``dict(embed_dims=64, text_dims=256)`` (projection width and text-feature width);
            ``temperature`` and ``loss_weight`` given here are passed to the loss (the released configs give
            them here). SiRi removes it.
        loss_contrastive_align (dict, optional): The alignment loss module, used when ``contrastive_align``
            is set. Defaults to :class:`~mmvlg.models.losses.ContrastiveAlignLoss` with the temperature
            (0.07) and weight (1.0) of ``contrastive_align``.
        assigner (dict): Hungarian assigner with its match costs.
        aux_loss (bool): Losses on every decoder layer, not only the last. Defaults to True.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_soft_tokens: int = 2,
                 soft_token_mode: str = 'sentence',
                 eos_coef: float = 0.1,
                 loss_ce_weight: float = 1.0,
                 loss_bbox: dict = dict(type='mmdet.L1Loss', loss_weight=5.0),
                 loss_iou: dict = dict(type='mmdet.GIoULoss', loss_weight=2.0),
                 contrastive_align: Optional[dict] = None,
                 loss_contrastive_align: Optional[dict] = None,
                 assigner: dict = dict(
                     type='mmdet.HungarianAssigner',
                     match_costs=[
                         dict(type='SoftTokenCost', weight=1.0),
                         dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
                         dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0)
                     ]),
                 aux_loss: bool = True,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if soft_token_mode not in ('token', 'sentence'):
            raise ValueError(f'soft_token_mode must be "token" or "sentence", got {soft_token_mode!r}')
        if soft_token_mode == 'sentence' and num_soft_tokens != 2:
            raise ValueError('soft_token_mode="sentence" uses num_soft_tokens=2')
        self.embed_dims = embed_dims
        self.num_soft_tokens = num_soft_tokens
        self.soft_token_mode = soft_token_mode
        self.eos_coef = eos_coef
        self.loss_ce_weight = loss_ce_weight
        self.aux_loss = aux_loss
        self.class_embed = nn.Linear(embed_dims, num_soft_tokens)
        self.bbox_embed = MLP(embed_dims, embed_dims, 4, 3)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_iou = MODELS.build(loss_iou)
        self.assigner = TASK_UTILS.build(assigner)
        self.contrastive_align = contrastive_align
        if contrastive_align is not None:
            dims = contrastive_align.get('embed_dims', 64)
            self.contrastive_align_projection_image = nn.Linear(embed_dims, dims)
            self.contrastive_align_projection_text = nn.Linear(contrastive_align.get('text_dims', embed_dims),
                                                               dims)
            self.loss_contrastive_align = MODELS.build(
                self._contrastive_loss_cfg(contrastive_align, loss_contrastive_align))
        elif loss_contrastive_align is not None:
            raise ValueError('MDETRHead: loss_contrastive_align needs contrastive_align (the sizes of the '
                             'box and text projections), e.g. contrastive_align=dict(embed_dims=64, text_dims=256)')

    @staticmethod
    def _contrastive_loss_cfg(contrastive_align: dict, loss_cfg: Optional[dict]) -> dict:
        """The loss config: ``loss_cfg`` (default ``ContrastiveAlignLoss``) with the ``temperature`` and
        ``loss_weight`` of ``contrastive_align`` where it does not set them."""
        cfg = dict(type='ContrastiveAlignLoss') if loss_cfg is None else dict(loss_cfg)
        for key in ('temperature', 'loss_weight'):
            if key not in contrastive_align:
                continue
            if key in cfg and cfg[key] != contrastive_align[key]:
                raise ValueError(f'MDETRHead: {key} is {contrastive_align[key]} in contrastive_align but '
                                 f'{cfg[key]} in loss_contrastive_align; give it in one place')
            cfg[key] = contrastive_align[key]
        return cfg

    def forward(self, hidden_states: Tensor, reference: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """
        Args:
            hidden_states (Tensor): (num_layers, bs, num_queries, C) decoder outputs.
            reference (Tensor, optional): (num_queries, 4) reference boxes (cx, cy, w, h) in (0, 1): the box
                head then predicts offsets in logit space from each query's reference box (the anchor/
                reference-point parametrization of Deformable and Anchor DETR), instead of absolute boxes.

        Returns:
            tuple: soft-token logits (num_layers, bs, num_queries, num_soft_tokens) and boxes
            (num_layers, bs, num_queries, 4), normalized (cx, cy, w, h) in [0, 1].
        """
        box_logits = self.bbox_embed(hidden_states)
        if reference is not None:
            box_logits = box_logits + inverse_sigmoid(reference.to(box_logits.dtype))
        return self.class_embed(hidden_states), box_logits.sigmoid()

    # ----------------------------------------------------------------------------------------- targets
    def positive_maps(self, batch_data_samples: SampleList, offsets: Optional[Tensor], device) -> List[Tensor]:
        """The soft-token target map of every ground-truth box, (num_gts, num_soft_tokens) per sample."""
        maps = []
        for b, ds in enumerate(batch_data_samples):
            n = len(ds.gt_instances)
            if self.soft_token_mode == 'sentence':
                m = torch.zeros(n, 2, device=device)
                m[:, 0] = 1
            else:
                if offsets.shape[1] > self.num_soft_tokens - 1:
                    raise ValueError(f'text of {ds.get("img_path", b)} has {offsets.shape[1]} tokens, more '
                                     f'than the head\'s num_soft_tokens - 1 = {self.num_soft_tokens - 1}')
                m = spans_to_positive_map(ds.tokens_positive, offsets[b], self.num_soft_tokens,
                                          text=ds.text)
            maps.append(m)
        return maps

    def _match(self, logits: Tensor, boxes: Tensor, batch_data_samples: SampleList,
               pos_maps: List[Tensor], gt_norm: Optional[List[Tensor]] = None) -> List[Tuple[Tensor, Tensor]]:
        """Hungarian matching of every image's queries to its ground truths.

        The costs are the assigner's match costs (mmdet's ``BBoxL1Cost``, ``IoUCost`` and our
        :class:`SoftTokenCost`), evaluated once for the whole batch on normalized boxes (queries of all
        images against the ground truths of all images, as DETR's matcher does) instead of one assigner call
        per image; each image's block then goes through ``scipy``'s ``linear_sum_assignment``, which is what
        mmdet's ``HungarianAssigner`` runs. The result equals per-image ``HungarianAssigner.assign`` calls.

        Args:
            logits (Tensor): (bs, num_queries, num_soft_tokens).
            boxes (Tensor): (bs, num_queries, 4) normalized (cx, cy, w, h).
            pos_maps (list[Tensor]): Per image (num_gts, num_soft_tokens) target maps.
            gt_norm (list[Tensor], optional): Per image (num_gts, 4) normalized (x1, y1, x2, y2) boxes
                (computed from ``batch_data_samples`` when not given).

        Returns:
            list[tuple[Tensor, Tensor]]: Per image, (query indices, ground-truth indices).
        """
        if gt_norm is None:
            gt_norm = self._normalized_gts(batch_data_samples, logits.device)
        sizes = [len(g) for g in gt_norm]
        empty = torch.zeros(0, dtype=torch.long, device=logits.device)
        if sum(sizes) == 0:
            return [(empty, empty) for _ in sizes]
        bs, nq = logits.shape[:2]
        pred = InstanceData(scores=logits.detach().flatten(0, 1),
                            bboxes=bbox_cxcywh_to_xyxy(boxes.detach().flatten(0, 1).float()))
        gts = InstanceData(bboxes=torch.cat(gt_norm).to(pred.bboxes), positive_maps=torch.cat(pos_maps),
                           labels=torch.cat([ds.gt_instances.labels.to(logits.device).long()
                                             for ds in batch_data_samples]))
        unit = dict(img_shape=(1, 1))  # the boxes are normalized already
        cost = sum(c(pred, gts, img_meta=unit) for c in self.assigner.match_costs)
        cost = cost.view(bs, nq, -1).cpu()
        if not torch.isfinite(cost).all():
            raise ValueError('non-finite matching cost: the predicted boxes or logits contain NaN/Inf '
                             '(the training diverged; lower the learning rate or check the inputs)')
        out, start = [], 0
        for b, n in enumerate(sizes):
            if n == 0:
                out.append((empty, empty))
                continue
            q, g = linear_sum_assignment(cost[b, :, start:start + n].numpy())
            start += n
            out.append((torch.as_tensor(q, dtype=torch.long, device=logits.device),
                        torch.as_tensor(g, dtype=torch.long, device=logits.device)))
        return out

    # ------------------------------------------------------------------------------------------- losses
    def loss(self, hidden_states: Tensor, batch_data_samples: SampleList, offsets: Optional[Tensor] = None,
             text_memory: Optional[Tensor] = None, text_mask: Optional[Tensor] = None,
             prefix: str = '', reference: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Losses of every decoder layer (the last one plain, the others as ``d{i}.``).

        Args:
            hidden_states (Tensor): (num_layers, bs, num_queries, C).
            batch_data_samples: With ``gt_instances`` and ``tokens_positive``.
            offsets (Tensor, optional): (bs, L, 2) token offsets (token mode, contrastive alignment).
            text_memory (Tensor, optional): (bs, L, C_text) encoder output at the text positions
                (contrastive alignment).
            text_mask (Tensor, optional): (bs, L), True at real tokens.
            prefix (str): Prepended to every loss name (e.g. ``'aux_dec.'``).
            reference (Tensor, optional): (num_queries, 4) reference boxes, see :meth:`forward`.
        """
        all_logits, all_boxes = self(hidden_states, reference)
        device = hidden_states.device
        pos_maps = self.positive_maps(batch_data_samples, offsets, device)
        num_gts = sum(len(ds.gt_instances) for ds in batch_data_samples)
        num_boxes = reduce_mean(torch.tensor(float(num_gts), device=device)).clamp(min=1).item()
        gt_norm = self._normalized_gts(batch_data_samples, device)
        token_maps = None
        if self.contrastive_align is not None:
            token_maps = [spans_to_positive_map(ds.tokens_positive, offsets[b], offsets.shape[1],
                                                normalize=False) > 0
                          for b, ds in enumerate(batch_data_samples)]
        losses = {}
        num_layers = all_logits.shape[0]
        layers = range(num_layers) if self.aux_loss else [num_layers - 1]
        for i in layers:
            name = prefix if i == num_layers - 1 else f'{prefix}d{i}.'
            indices = self._match(all_logits[i], all_boxes[i], batch_data_samples, pos_maps, gt_norm)
            layer_losses = self._layer_losses(all_logits[i], all_boxes[i], indices, pos_maps, gt_norm, num_boxes)
            if token_maps is not None:
                layer_losses['loss_contrastive_align'] = self._contrastive_align_loss(
                    hidden_states[i], text_memory, text_mask, indices, token_maps, num_boxes)
            losses.update({name + k: v for k, v in layer_losses.items()})
        return losses

    @staticmethod
    def _normalized_gts(batch_data_samples: SampleList, device) -> List[Tensor]:
        out = []
        for ds in batch_data_samples:
            img_h, img_w = ds.img_shape
            factor = torch.tensor([img_w, img_h, img_w, img_h], dtype=torch.float32, device=device)
            out.append(ds.gt_instances.bboxes.to(device).float() / factor)
        return out

    def _layer_losses(self, logits: Tensor, boxes: Tensor, indices, pos_maps, gt_norm, num_boxes: float
                      ) -> Dict[str, Tensor]:
        bs, nq, nt = logits.shape
        batch_idx = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(indices)])
        query_idx = torch.cat([q for q, _ in indices])
        target = logits.new_zeros(bs, nq, nt)
        target[..., -1] = 1
        weight = logits.new_full((bs, nq), self.eos_coef)
        if len(query_idx):
            target[batch_idx, query_idx] = torch.cat([pos_maps[b][g] for b, (_, g) in enumerate(indices)]).to(
                logits.dtype)
            weight[batch_idx, query_idx] = 1.0
        loss_ce = -(logits.log_softmax(-1) * target).sum(-1)
        loss_ce = (loss_ce * weight).sum() / num_boxes * self.loss_ce_weight

        if len(query_idx):
            src = boxes[batch_idx, query_idx]
            tgt_xyxy = torch.cat([gt_norm[b][g] for b, (_, g) in enumerate(indices)])
            loss_bbox = self.loss_bbox(src, bbox_xyxy_to_cxcywh(tgt_xyxy), avg_factor=num_boxes)
            loss_iou = self.loss_iou(bbox_cxcywh_to_xyxy(src), tgt_xyxy, avg_factor=num_boxes)
        else:
            loss_bbox = loss_iou = boxes.sum() * 0
        return dict(loss_ce=loss_ce, loss_bbox=loss_bbox, loss_iou=loss_iou)

    def _contrastive_align_loss(self, hs: Tensor, text_memory: Tensor, text_mask: Tensor, indices,
                                token_maps: List[Tensor], num_boxes: float) -> Tensor:
        """MDETR's symmetric box-token InfoNCE over the matched queries' token maps.

        Args:
            hs (Tensor): (bs, num_queries, C) one decoder layer's output.
            text_memory (Tensor): (bs, L, C_text) encoder output at the text positions.
            text_mask (Tensor): (bs, L), True at real tokens.
            indices (list[tuple[Tensor, Tensor]]): Per image, matched (query indices, ground-truth indices).
            token_maps (list[Tensor]): Per image, (num_gts, L) bool: the tokens of each box's phrase.
            num_boxes (float): Normalizer.
        """
        bs, nq = hs.shape[:2]
        pos = hs.new_zeros(bs, nq, text_memory.shape[1], dtype=torch.bool)
        for b, (qi, gi) in enumerate(indices):
            if len(qi):
                pos[b, qi] = token_maps[b][gi]
        return self.loss_contrastive_align(self.contrastive_align_projection_image(hs),
                                           self.contrastive_align_projection_text(text_memory), pos, text_mask,
                                           avg_factor=num_boxes)

    # ---------------------------------------------------------------------------------------- inference
    def predict(self, hidden_states: Tensor, batch_data_samples: SampleList, rescale: bool = True,
                offsets: Optional[Tensor] = None, reference: Optional[Tensor] = None) -> List[InstanceData]:
        """Rank the queries of the last decoder layer for the whole expression.

        The score of a query is ``1 - p(no object)`` (MDETR's referring-expression post-processing).

        Returns:
            list[InstanceData]: Per image, all queries sorted by score: ``bboxes`` (num_queries, 4) in
            x1, y1, x2, y2 pixels of the original image (``rescale=True``) or of the network input,
            ``scores`` and ``labels`` (zeros).
        """
        logits, boxes = self(hidden_states[-1:], reference)
        logits, boxes = logits[0], boxes[0]
        scores = 1 - logits.softmax(-1)[..., -1]
        results = []
        for b, ds in enumerate(batch_data_samples):
            xyxy = denormalize_boxes(boxes[b], ds.img_shape)
            if rescale:
                xyxy = rescale_boxes(xyxy, ds.metainfo)
            order = scores[b].argsort(descending=True)
            results.append(InstanceData(bboxes=xyxy[order], scores=scores[b][order],
                                        labels=torch.zeros_like(order), query_index=order))
        return results

