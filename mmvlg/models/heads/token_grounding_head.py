"""A dense grounding loss on the vision-language encoder's image tokens."""
from typing import Dict, Tuple

import torch
from mmdet.structures import SampleList
from mmdet.utils import reduce_mean
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS

from ..utils import cell_centres


@MODELS.register_module()
class TokenGroundingHead(BaseModule):
    """Scores every image token of the encoder output for "lies on the referred object" and trains the
    scores with a cross-entropy over the image's tokens.

    The target distribution of an image spreads uniformly over the tokens whose cell centre lies inside a
    ground-truth box (the union of its boxes); a box that contains no cell centre contributes the cell of its
    centre. Padding tokens are excluded. The loss is averaged over the images that have ground truth.

    This is not part of MDETR or SiRi. MDETR supervises the encoder only through the decoder's matched
    queries, one per referred object, which makes a model trained from scratch slow to start; this loss adds
    a direct, dense signal to the backbone and the encoder (like the encoder-side proposal losses of
    two-stage DETRs). It only adds a loss: inference and the parameters used at inference are unchanged.
    The reference RefCOCO configs do not use it; the SynthRef config does (see ``configs/mdetr/README.md``).

    Args:
        embed_dims (int): Encoder width.
        loss_weight (float): Weight of the loss. Defaults to 1.
    """

    def __init__(self, embed_dims: int = 256, loss_weight: float = 1.0, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.loss_weight = loss_weight
        self.score = nn.Linear(embed_dims, 1)

    def forward(self, img_memory: Tensor) -> Tensor:
        """(bs, h * w, C) encoder outputs at the image positions -> (bs, h * w) logits."""
        return self.score(img_memory).squeeze(-1)

    @staticmethod
    def targets(batch_data_samples: SampleList, feat_shape: Tuple[int, int], input_shape: Tuple[int, int],
                device) -> Tuple[Tensor, Tensor]:
        """Target distributions (bs, h * w) and a (bs,) mask of the images that have ground truth.

        Args:
            feat_shape (tuple): (h, w) of the token grid, which covers the padded input.
            input_shape (tuple): (H, W) of the padded batch input, in the pixels of ``gt_instances.bboxes``.
        """
        h, w = feat_shape
        in_h, in_w = input_shape
        cx, cy = cell_centres(feat_shape, input_shape, device).unbind(-1)  # (h * w,) each, input pixels
        target = torch.zeros(len(batch_data_samples), h * w, device=device)
        valid = torch.zeros(len(batch_data_samples), dtype=torch.bool, device=device)
        for b, ds in enumerate(batch_data_samples):
            boxes = ds.gt_instances.bboxes
            boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
            if len(boxes) == 0:
                continue
            boxes = boxes.to(device).float()
            inside = ((cx[None] >= boxes[:, 0:1]) & (cx[None] <= boxes[:, 2:3]) & (cy[None] >= boxes[:, 1:2]) &
                      (cy[None] <= boxes[:, 3:4]))  # (num_gts, h * w)
            ctr_x = ((boxes[:, 0] + boxes[:, 2]) / 2 * w / in_w).long().clamp(0, w - 1)
            ctr_y = ((boxes[:, 1] + boxes[:, 3]) / 2 * h / in_h).long().clamp(0, h - 1)
            inside[torch.arange(len(boxes), device=device), ctr_y * w + ctr_x] |= ~inside.any(1)
            target[b] = inside.any(0).float()
            valid[b] = True
        target = target / target.sum(1, keepdim=True).clamp(min=1)
        return target, valid

    def loss(self, img_memory: Tensor, img_padding: Tensor, batch_data_samples: SampleList,
             feat_shape: Tuple[int, int], input_shape: Tuple[int, int]) -> Dict[str, Tensor]:
        """
        Args:
            img_memory (Tensor): (bs, h * w, C) encoder outputs at the image positions.
            img_padding (Tensor): (bs, h * w), True at padding.
            feat_shape (tuple): (h, w).
            input_shape (tuple): (H, W) of the padded input.
        """
        logits = self(img_memory).float().masked_fill(img_padding, float('-inf'))
        target, valid = self.targets(batch_data_samples, feat_shape, input_shape, img_memory.device)
        log_prob = logits.log_softmax(-1).masked_fill(img_padding, 0)
        per_image = -(target * log_prob).sum(-1)
        num = reduce_mean(valid.sum().float()).clamp(min=1)
        return dict(loss_token_grounding=(per_image * valid).sum() / num * self.loss_weight)
