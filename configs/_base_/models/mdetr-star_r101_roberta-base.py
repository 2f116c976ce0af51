# SiRi's MDETR* (section 3.1): ResNet-101 (frozen BN) + low-level fusion of layer2 into layer4, RoBERTa-base,
# 6 encoder + 6 decoder layers of width 256, 16 learnable queries, 2 soft tokens, no contrastive alignment.
# The stem and layer1 stay frozen (frozen_stages=1), as in MDETR's and the SiRi authors' code, which train only
# layer2-4 of the ImageNet ResNet.
embed_dims = 256
model = dict(
    type='MDETR',
    num_queries=16,
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=1),
    backbone=dict(
        type='mmdet.ResNet', depth=101, num_stages=4, out_indices=(1, 3), frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True, style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')),
    neck=dict(type='LowLevelFusionNeck', in_channels=(512, 2048), out_channels=embed_dims, strides=(2, 2)),
    language_model=dict(type='HFTextEncoder', name_or_path='roberta-base', max_length=256),
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True),
    encoder=dict(type='VLTransformerEncoder', num_layers=6,
                 layer_cfg=dict(embed_dims=embed_dims, num_heads=8, feedforward_channels=2048, dropout=0.1)),
    decoder=dict(type='DetrTransformerDecoderSDPA', num_layers=6,
                 layer_cfg=dict(embed_dims=embed_dims, num_heads=8, feedforward_channels=2048, dropout=0.1)),
    bbox_head=dict(
        type='MDETRHead', embed_dims=embed_dims, num_soft_tokens=2, soft_token_mode='sentence', eos_coef=0.1,
        loss_ce_weight=1.0,
        loss_bbox=dict(type='mmdet.L1Loss', loss_weight=5.0),
        loss_iou=dict(type='mmdet.GIoULoss', loss_weight=2.0),
        assigner=dict(type='mmdet.HungarianAssigner', match_costs=[
            dict(type='SoftTokenCost', weight=1.0),
            dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0)])),
)
