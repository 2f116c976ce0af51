"""FIBER's fine-grained head: DyHead + ATSS with GLIP-style grounding scores (arXiv:2206.07643, section 3.2)."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import Scale
from mmdet.models.dense_heads.atss_head import ATSSHead
from mmdet.models.dense_heads.atss_vlfusion_head import ATSSVLFusionHead, VLFusionModule
from mmdet.structures import SampleList
from mmdet.utils import InstanceList
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmvlg.registry import MODELS

from ..utils import spans_to_positive_map


class GroundingDyHeadModule(VLFusionModule):
    """mmdet's GLIP head module (:class:`~mmdet.models.dense_heads.atss_vlfusion_head.VLFusionModule`) without
    its in-head fusion, as FIBER uses it: the image features are already text-aware, so the head is a DyHead
    tower (DyConv blocks: scale-, spatial- and task-aware attention) followed by box, centerness and grounding
    branches. The grounding score of anchor a and token t is the dot product of the region feature and the
    projected token feature, scaled and biased as in GLIP/FIBER:

    ``s(a, t) = <R_a, W e_t / 2> / exp(log_scale) + <e_t, bias_lang> + bias0``, with ``e_t`` the L2-normalized
    token feature, ``log_scale`` (init 0), ``bias_lang`` (init 0) and ``bias0`` (init -log(99), the focal
    prior 0.01) learnable.

    The language width is given directly (``lang_dim``) instead of read from a downloaded BERT config.
    """

    def __init__(self, in_channels: int, feat_channels: int, num_base_priors: int, lang_dim: int,
                 num_dyhead_blocks: int = 6, use_dyrelu: bool = True, use_dyfuse: bool = True,
                 use_dcn: bool = True, use_checkpoint: bool = False, **kwargs) -> None:
        BaseModel.__init__(self, **kwargs)
        self.in_channels, self.feat_channels, self.num_base_priors = in_channels, feat_channels, num_base_priors
        self.early_fuse = False
        self.num_dyhead_blocks = num_dyhead_blocks
        self.use_dyrelu, self.use_dyfuse, self.use_dcn = use_dyrelu, use_dyfuse, use_dcn
        self.use_checkpoint = use_checkpoint
        self.lang_dim = lang_dim
        self._init_layers()


@MODELS.register_module()
class FIBERHead(ATSSVLFusionHead):
    """ATSS head whose classification branch is replaced by grounding scores against the (image-aware) text
    tokens, after a DyHead tower, as in `FIBER <https://arxiv.org/abs/2206.07643>`_'s fine-grained model and
    GLIP. Training: ATSS assignment, sigmoid focal loss of every (anchor, real token) pair against token-level
    positive maps built from ``tokens_positive``, GIoU loss weighted by centerness targets and centerness BCE
    (mmdet's :class:`~mmdet.models.dense_heads.ATSSVLFusionHead` losses).

    Inputs: the neck's feature maps, (bs, C, H_l, W_l) per level, and the text dict of
    :class:`~mmvlg.models.backbones.FIBERBackbone` (``embeds`` (bs, L, C_t), ``mask`` (bs, L) True at real
    tokens, ``offsets`` (bs, L, 2)).

    Args:
        lang_dim (int): Width C_t of the text features (768 for RoBERTa-base).
        num_dyhead_blocks (int): DyHead blocks (6 in FIBER).
        use_dyrelu, use_dyfuse, use_dcn (bool): DyHead's attentions (all on in FIBER).
        use_checkpoint (bool): Gradient checkpointing in the tower.
        **kwargs: :class:`~mmdet.models.dense_heads.ATSSHead` arguments (``num_classes`` is unused).
    """

    def __init__(self, *args, lang_dim: int = 768, num_dyhead_blocks: int = 6, use_dyrelu: bool = True,
                 use_dyfuse: bool = True, use_dcn: bool = True, use_checkpoint: bool = False, init_cfg=None,
                 num_classes: int = 1, **kwargs) -> None:
        ATSSHead.__init__(self, num_classes, *args, init_cfg=init_cfg, **kwargs)
        self.head = GroundingDyHeadModule(
            in_channels=self.in_channels, feat_channels=self.feat_channels, num_base_priors=self.num_base_priors,
            lang_dim=lang_dim, num_dyhead_blocks=num_dyhead_blocks, use_dyrelu=use_dyrelu, use_dyfuse=use_dyfuse,
            use_dcn=use_dcn, use_checkpoint=use_checkpoint)
        self.text_masks = None

    def init_weights(self) -> None:
        """The GLIP/FIBER initialization: normal(0.01) box and centerness convolutions with zero bias (mmdet's
        DyConv blocks initialize themselves); ``log_scale`` 0, ``bias_lang`` 0, ``bias0`` -log(99)."""
        super().init_weights()
        for conv in (self.head.bbox_pred, self.head.centerness):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        with torch.no_grad():
            self.head.log_scale.zero_()
            self.head.bias_lang.zero_()
            self.head.bias0.fill_(-math.log((1 - 0.01) / 0.01))
            for scale in self.head.scales:
                if isinstance(scale, Scale):
                    scale.scale.fill_(1.0)

    @staticmethod
    def language_feats(text: Dict[str, Tensor]) -> dict:
        """The text dict of the backbone -> mmdet's GLIP ``language_feats`` (``embedded`` zero at padding,
        ``hidden``, ``masks``)."""
        mask = text['mask']
        return dict(embedded=text['embeds'] * mask[..., None].to(text['embeds'].dtype), hidden=text['embeds'],
                    masks=mask.long(), offsets=text['offsets'])

    def forward(self, visual_feats: Tuple[Tensor], language_feats: dict) -> Tuple[List[Tensor], ...]:
        """Returns ``cls_logits`` (bs, H_l*W_l*A, L), ``bbox_preds`` (bs, 4A, H_l, W_l) and ``centerness``
        (bs, A, H_l, W_l) per level."""
        return super().forward(visual_feats, language_feats)

    def loss(self, visual_feats: Tuple[Tensor], language_feats: dict, batch_data_samples: SampleList) -> dict:
        """Build every sample's token positive map (num_gt, L) from its ``tokens_positive`` (binary, as GLIP's
        ``.bool().float()``) and compute the ATSS losses."""
        offsets, num_tokens = language_feats['offsets'], language_feats['masks'].shape[1]
        for b, ds in enumerate(batch_data_samples):
            spans = ds.metainfo.get('tokens_positive', [])
            if len(spans) != len(ds.gt_instances):
                raise ValueError(f'sample {b}: {len(ds.gt_instances)} boxes but {len(spans)} tokens_positive')
            ds.gt_instances.positive_maps = spans_to_positive_map(spans, offsets[b], num_tokens, normalize=False,
                                                                  text=ds.metainfo.get('text', ''))
        return super().loss(visual_feats, language_feats, batch_data_samples)

    def get_targets(self, *args, **kwargs) -> tuple:
        """ATSS targets; the loss normalizer (positive anchors) is at least 1, as in FIBER/GLIP's
        ``max(num_pos, 1)`` (mmdet's GLIP head divides by 0 + eps when a batch has no box)."""
        targets = super().get_targets(*args, **kwargs)
        return targets[:-1] + (max(targets[-1], 1), )

    def _get_targets_single(self, flat_anchors: Tensor, valid_flags: Tensor, num_level_anchors: List[int],
                            gt_instances: InstanceData, img_meta: dict,
                            gt_instances_ignore: Optional[InstanceData] = None, unmap_outputs: bool = True) -> tuple:
        """ATSS targets of one image, with token-level labels (num_anchors, L) from the positive maps.

        mmdet's GLIP version sizes the labels by ``feat_channels`` (its texts are padded to 256 tokens); here
        they have the width of the batch's token positive maps. Anchors follow GLIP's convention (x2, y2 - 1).
        """
        anchors = flat_anchors
        anchors[:, 2:] -= 1
        pred_instances = InstanceData(priors=anchors)
        assign_result = self.assigner.assign(pred_instances, num_level_anchors, gt_instances, gt_instances_ignore)
        sampling_result = self.sampler.sample(assign_result, pred_instances, gt_instances)
        num_anchors = anchors.shape[0]
        bbox_targets, bbox_weights = torch.zeros_like(anchors), torch.zeros_like(anchors)
        labels = anchors.new_zeros((num_anchors, gt_instances.positive_maps.shape[1]))
        label_weights = anchors.new_zeros(num_anchors)
        pos_inds, neg_inds = sampling_result.pos_inds, sampling_result.neg_inds
        if len(pos_inds) > 0:
            if self.reg_decoded_bbox:
                pos_bbox_targets = sampling_result.pos_gt_bboxes
            else:
                pos_bbox_targets = self.bbox_coder.encode(sampling_result.pos_priors, sampling_result.pos_gt_bboxes)
            bbox_targets[pos_inds, :] = pos_bbox_targets
            bbox_weights[pos_inds, :] = 1.0
            labels[pos_inds] = gt_instances.positive_maps[sampling_result.pos_assigned_gt_inds].to(labels.dtype)
            pos_weight = self.train_cfg['pos_weight']
            label_weights[pos_inds] = 1.0 if pos_weight <= 0 else pos_weight
        if len(neg_inds) > 0:
            label_weights[neg_inds] = 1.0
        return (anchors, labels, label_weights, bbox_targets, bbox_weights, pos_inds, neg_inds, sampling_result)

    def predict_groups(self, visual_feats: Tuple[Tensor], language_feats: dict,
                       token_groups: Sequence[Dict[int, List[int]]], batch_img_metas: List[dict],
                       rescale: bool = True) -> InstanceList:
        """Boxes scored for groups of tokens (a referring expression, the phrases of a caption).

        The score of an anchor for a group is ``sqrt(mean_t sigmoid(s(a, t)) * sigmoid(centerness_a))`` over
        the group's tokens (GLIP's ``convert_grounding_to_cls_scores``); boxes go through per-group NMS and
        ``test_cfg.max_per_img``.

        Args:
            token_groups: Per sample, ``{label: [token indices]}`` with labels 1, 2, ... (mmdet's
                ``token_positive_map``).

        Returns:
            list[InstanceData]: ``bboxes`` (n, 4) x1, y1, x2, y2, ``scores`` (n,) in decreasing order and
            ``labels`` (n,) (group label - 1).
        """
        outs = self(visual_feats, language_feats)
        return self.predict_by_feat(*outs, batch_img_metas=batch_img_metas,
                                    batch_token_positive_maps=list(token_groups), rescale=rescale)
