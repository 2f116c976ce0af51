# FIBER's fine-grained model (arXiv:2206.07643, sections 3.1-3.3 and 4): Swin-B (window 12, ImageNet-22k 384)
# and RoBERTa-base with gated cross-attention in their top 6 layers (the last 4 blocks of Swin stage 3 and the 2
# of stage 4 <-> RoBERTa layers 6-11), FPN on stages 2-4 (P3-P7, 256 channels), a 6-block DyHead and an ATSS
# head with GLIP-style grounding scores. Pretrained weights by local path (or URL):
#   --cfg-options model.backbone.visual_checkpoint=/path/to/swin_base_patch4_window12_384_22k.pth \
#                 model.backbone.language_model.name_or_path=/path/to/roberta-base
embed_dims = 256
model = dict(
    type='FIBER',
    grounding_task='rec',
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='FIBERBackbone',
        num_fusion_layers=6,
        visual=dict(
            type='mmdet.SwinTransformer', pretrain_img_size=384, embed_dims=128, depths=(2, 2, 18, 2),
            num_heads=(4, 8, 16, 32), window_size=12, mlp_ratio=4, drop_path_rate=0.4, patch_norm=True,
            out_indices=(1, 2, 3), with_cp=False),
        # official Swin release (keys converted on loading; timm and mmdet layouts load too)
        visual_checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
        'swin_base_patch4_window12_384_22k.pth',
        language_model=dict(type='HFTextEncoder', name_or_path='roberta-base', max_length=256),
        with_cp=False),
    neck=dict(
        type='mmdet.FPN', in_channels=[256, 512, 1024], out_channels=embed_dims, start_level=0,
        add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
    bbox_head=dict(
        type='FIBERHead', in_channels=embed_dims, feat_channels=embed_dims, lang_dim=768, num_dyhead_blocks=6,
        use_dyrelu=True, use_dyfuse=True, use_dcn=True,
        anchor_generator=dict(
            type='mmdet.AnchorGenerator', ratios=[1.0], octave_base_scale=8, scales_per_octave=1,
            strides=[8, 16, 32, 64, 128], center_offset=0.5),
        bbox_coder=dict(
            type='mmdet.DeltaXYWHBBoxCoderForGLIP', target_means=[0.0, 0.0, 0.0, 0.0],
            target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='mmdet.GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(assigner=dict(type='mmdet.ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1,
                   debug=False),
    # the authors' grounding evaluation: no score threshold, 100 boxes per image, NMS per phrase
    test_cfg=dict(nms_pre=3000, min_bbox_size=0, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.6),
                  max_per_img=100))
