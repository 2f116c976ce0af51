"""One box per sample regressed from one feature vector (TransVG, X-VLM)."""
from typing import Dict, List, Optional

import torch
from mmdet.models.layers import MLP
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmdet.utils import ConfigType, OptConfigType
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from mmvlg.registry import MODELS

from ..utils import denormalize_boxes, rescale_boxes


@MODELS.register_module()
class BoxRegressionHead(BaseModule):
    """Regress the one box of each sample from one feature vector: an MLP to 4 outputs and a sigmoid give a
    normalized (cx, cy, w, h) box, trained with an L1 loss on (cx, cy, w, h) and a GIoU loss on
    (x1, y1, x2, y2), both on boxes normalized by ``img_shape``.

    The feature is the output at a dedicated token: TransVG's ``[REG]`` token (arXiv:2104.08541, section 3.3,
    a 3-layer MLP; L1 weight 5, GIoU weight 2, the defaults here) or the ``[CLS]`` output of X-VLM's cross
    encoder (arXiv:2111.08276, section 3.3, box prediction for visual grounding).

    Args:
        in_channels (int): Width of the input feature.
        hidden_channels (int, optional): Width of the MLP's hidden layers. Defaults to ``in_channels``.
        num_layers (int): Linear layers of the default MLP (mmdet's ``MLP``, ReLU between layers). Defaults
            to 3.
        mlp (dict, optional): Config of a registered module that maps (..., in_dims) to (..., out_dims), used
            instead of the default MLP; ``in_dims=in_channels`` and ``out_dims=4`` are filled in. X-VLM's box
            head is ``dict(type='MLPBlock', hidden_dims=2 * in_channels)`` (Linear-LayerNorm-GELU-Linear).
        loss_bbox (dict): L1 loss. Defaults to ``mmdet.L1Loss`` with weight 5.
        loss_iou (dict): GIoU loss. Defaults to ``mmdet.GIoULoss`` with weight 2.
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: Optional[int] = None,
                 num_layers: int = 3,
                 mlp: OptConfigType = None,
                 loss_bbox: ConfigType = dict(type='mmdet.L1Loss', loss_weight=5.0),
                 loss_iou: ConfigType = dict(type='mmdet.GIoULoss', loss_weight=2.0),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        if mlp is None:
            self.bbox_embed = MLP(in_channels, hidden_channels or in_channels, 4, num_layers)
        else:
            self.bbox_embed = MODELS.build(dict(dict(in_dims=in_channels, out_dims=4), **mlp))
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_iou = MODELS.build(loss_iou)

    def forward(self, feats: Tensor) -> Tensor:
        """(bs, in_channels) features -> (bs, 4) normalized (cx, cy, w, h) boxes in (0, 1)."""
        return self.bbox_embed(feats).sigmoid()

    @staticmethod
    def targets(batch_data_samples: SampleList, device) -> Tensor:
        """(bs, 4) normalized (x1, y1, x2, y2) targets: each sample's ground-truth box (``gt_instances.bboxes``
        in pixels of ``img_shape``) divided by the image size.

        Raises:
            ValueError: A sample does not have exactly one box.
        """
        out = []
        for ds in batch_data_samples:
            boxes = ds.gt_instances.bboxes
            boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
            if len(boxes) != 1:
                raise ValueError(f'BoxRegressionHead predicts one box per sample; '
                                 f'{ds.metainfo.get("img_path", "a sample")} has {len(boxes)}')
            img_h, img_w = ds.img_shape[:2]
            out.append(boxes.to(device).float().view(4) / torch.tensor([img_w, img_h, img_w, img_h],
                                                                       dtype=torch.float32, device=device))
        return torch.stack(out)

    def loss(self, feats: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """
        Args:
            feats (Tensor): (bs, in_channels).
            batch_data_samples (list): One ground-truth box per sample (``gt_instances.bboxes``, (1, 4)).

        Returns:
            dict: ``loss_bbox`` (L1) and ``loss_iou`` (GIoU), each averaged over the samples.
        """
        return self.loss_by_boxes(feats, self.targets(batch_data_samples, feats.device))

    def loss_by_boxes(self, feats: Tensor, targets: Tensor, weights: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """The losses for boxes given as a tensor, e.g. the regions of X-VLM's pre-training (several per image).

        Args:
            feats (Tensor): (n, in_channels).
            targets (Tensor): (n, 4) normalized (x1, y1, x2, y2) target boxes.
            weights (Tensor, optional): (n,) per-box weights, 0 to leave a box out (X-VLM's code leaves out the
                whole-image captions given as regions); the losses are averaged over the sum of the weights. None:
                every box counts (this is :meth:`loss`).

        Returns:
            dict: ``loss_bbox`` (L1 on cx, cy, w, h) and ``loss_iou`` (GIoU); with no box of positive weight, zero
            losses that keep the graph.
        """
        pred = self(feats).float()
        targets = targets.to(pred)
        if weights is None:
            num = max(len(targets), 1)
            box_weights = iou_weights = None
        else:
            weights = weights.to(pred)
            num = float(weights.sum())
            if num <= 0:
                zero = pred.sum() * 0.0
                return dict(loss_bbox=zero, loss_iou=zero.clone())
            box_weights, iou_weights = weights[:, None].expand(-1, 4), weights
        return dict(loss_bbox=self.loss_bbox(pred, bbox_xyxy_to_cxcywh(targets), weight=box_weights, avg_factor=num),
                    loss_iou=self.loss_iou(bbox_cxcywh_to_xyxy(pred), targets, weight=iou_weights, avg_factor=num))

    def predict(self, feats: Tensor, batch_data_samples: SampleList, rescale: bool = True) -> List[InstanceData]:
        """
        Args:
            feats (Tensor): (bs, in_channels).
            batch_data_samples (list): With ``img_shape`` (and ``scale_factor``, ``ori_shape`` to rescale).
            rescale (bool): Boxes in pixels of the original image (divided by ``scale_factor``, clipped to
                ``ori_shape``) instead of the network input. Defaults to True.

        Returns:
            list[InstanceData]: Per sample, ``bboxes`` (1, 4) as (x1, y1, x2, y2) pixels, ``scores`` (1,)
            ones and ``labels`` (1,) zeros.
        """
        boxes = self(feats)
        results = []
        for b, ds in enumerate(batch_data_samples):
            xyxy = denormalize_boxes(boxes[b:b + 1], ds.img_shape)
            if rescale:
                xyxy = rescale_boxes(xyxy, ds.metainfo)
            results.append(InstanceData(bboxes=xyxy, scores=boxes.new_ones(1),
                                        labels=torch.zeros(1, dtype=torch.long, device=boxes.device)))
        return results
