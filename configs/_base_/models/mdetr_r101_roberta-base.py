# MDETR (arXiv:2104.12763) as the authors release it (ashkamath/mdetr, hubconf.py `_make_detr`): ResNet-101 with
# frozen BatchNorm and no dilation (stem and layer1 frozen), 1x1 projection of layer4 to 256, RoBERTa-base,
# 6 encoder + 6 decoder post-norm layers of width 256 (8 heads, FFN 2048), 100 learnable queries, 256 soft tokens
# (255 token positions + "no object") and the box-token contrastive-alignment projections (64-d).
# The pre-trained and the RefCOCO/+/g fine-tuned ResNet-101 checkpoints all have this architecture; convert them
# with tools/model_converters/mdetr_to_mmvlg.py --source mdetr.
embed_dims = 256
model = dict(
    type='MDETR',
    num_queries=100,
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=1),
    backbone=dict(
        type='mmdet.ResNet', depth=101, num_stages=4, out_indices=(3, ), frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True, style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')),
    neck=dict(type='LowLevelFusionNeck', in_channels=(2048, ), out_channels=embed_dims, with_fusion=False),
    language_model=dict(type='HFTextEncoder', name_or_path='roberta-base', max_length=256),
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True),
    encoder=dict(type='VLTransformerEncoder', num_layers=6,
                 layer_cfg=dict(embed_dims=embed_dims, num_heads=8, feedforward_channels=2048, dropout=0.1)),
    decoder=dict(type='DetrTransformerDecoderSDPA', num_layers=6,
                 layer_cfg=dict(embed_dims=embed_dims, num_heads=8, feedforward_channels=2048, dropout=0.1)),
    bbox_head=dict(
        type='MDETRHead', embed_dims=embed_dims, num_soft_tokens=256, soft_token_mode='token', eos_coef=0.1,
        loss_ce_weight=1.0,
        loss_bbox=dict(type='mmdet.L1Loss', loss_weight=5.0),
        loss_iou=dict(type='mmdet.GIoULoss', loss_weight=2.0),
        contrastive_align=dict(embed_dims=64, temperature=0.07, loss_weight=1.0, text_dims=embed_dims),
        assigner=dict(type='mmdet.HungarianAssigner', match_costs=[
            dict(type='SoftTokenCost', weight=1.0),
            dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0)])),
)
