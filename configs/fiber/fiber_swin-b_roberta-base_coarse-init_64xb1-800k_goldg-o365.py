# FIBER-B fine-grained pre-training (arXiv:2206.07643, sections 3.2 and 4): the coarse-grained model as
# initialization, a fresh FPN/DyHead/ATSS grounding head, 800x1333 inputs, trained with the box losses and the
# word-region alignment loss on image-text-box data: MDETR's GoldG data without COCO images ("mixed_train_no_coco":
# Visual Genome/GQA captions with phrase boxes), Flickr30k Entities (separate GT) and Objects365 as detection
# phrased as grounding (class-name prompts with sampled negatives). The authors' file for this stage is
# microsoft/FIBER fine_grained/configs/pretrain/mixed_nococo_flickr_objects365.yaml; its settings are kept here:
# 800k iterations at batch 64 (64 GPUs x 1 image), AdamW lr 1e-4 (1e-5 for RoBERTa), weight decay 0.01, linear
# warm-up over 2k iterations from a factor 1e-3, drops by 10x at 67% and 89%, gradient clipping at norm 1.0, AMP,
# an EMA of the weights (decay 0.999), Objects365 prompts with up to 85 sampled negatives, zero-shot COCO val2017
# as the validation set.
# Layout: data/mdetr_annotations/final_{mixed_train_no_coco,flickr_separateGT_train}.json (MDETR's release),
# data/gqa/images/ (the mixed file's images), data/flickr30k/flickr30k-images/, data/objects365/ (zhiyuan_objv2_
# train.json + train/), data/coco/ (instances_val2017.json + val2017/).
#   bash tools/dist_train.sh configs/fiber/fiber_swin-b_roberta-base_coarse-init_64xb1-800k_goldg-o365.py 64 \
#       --cfg-options model.backbone.init_cfg.checkpoint=/path/to/coarse.pth \
#                     model.backbone.language_model.name_or_path=/path/to/roberta-base
_base_ = ['./fiber_swin-b_roberta-base_16xb2-24e_coco.py']

coarse_checkpoint = 'work_dirs/fiber-coarse_swin-b_roberta-base_64xb64-100k_coco-vg-sbu-cc/iter_100000.pth'
model = dict(
    backbone=dict(
        visual_checkpoint=None,  # the Swin comes from the coarse checkpoint, as do RoBERTa and the cross-attentions
        init_cfg=dict(type='Pretrained', checkpoint=coarse_checkpoint, prefix='backbone.')))

backend_args = None
grounding_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction',
                       'text', 'split', 'original_id')
detection_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction',
                       'text', 'class_spans')
train_scales = [(1333, 480), (1333, 560), (1333, 640), (1333, 720), (1333, 800)]
# Captions: no flip (a caption may say "left" or "right"; the authors flip only detection data).
grounding_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadGroundingAnnotations'),
    dict(type='RandomChoiceResize', resize_type='mmdet.Resize', keep_ratio=True, scales=train_scales),
    dict(type='PackGroundingInputs', meta_keys=grounding_meta_keys),
]
detection_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='mmdet.GTBoxSubOne_GLIP'),
    dict(type='RandomChoiceResize', resize_type='mmdet.Resize', keep_ratio=True, scales=train_scales),
    dict(type='mmdet.RandomFlip_GLIP', prob=0.5),
    dict(type='mmdet.FilterAnnotations', min_gt_bbox_wh=(1, 1)),
    # RANDOM_SAMPLE_NEG 85 and the first three CONTROL_PROB values of the authors' file
    dict(type='DetectionPrompt', separator='. ', random_negatives=True, max_negatives=85,
         control_probs=(0.05, 0.05, 0.5)),
    dict(type='PackGroundingInputs', meta_keys=detection_meta_keys),
]
goldg_mixed = dict(
    type='MDETRRefExpDataset', data_root='data/', ann_file='mdetr_annotations/final_mixed_train_no_coco.json',
    data_prefix=dict(img='gqa/images/'), split='mixed_train_no_coco',
    pipeline=grounding_pipeline)
goldg_flickr = dict(
    type='Flickr30kEntitiesDataset', data_root='data/',
    ann_file='mdetr_annotations/final_flickr_separateGT_train.json',
    data_prefix=dict(img='flickr30k/flickr30k-images/'), pipeline=grounding_pipeline)
objects365 = dict(
    type='mmdet.Objects365V2Dataset', data_root='data/objects365/', ann_file='annotations/zhiyuan_objv2_train.json',
    data_prefix=dict(img='train/'), filter_cfg=dict(filter_empty_gt=True, min_size=32), return_classes=True,
    pipeline=detection_pipeline, backend_args=backend_args)
train_dataloader = dict(
    _delete_=True,
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[goldg_mixed, goldg_flickr, objects365]))

max_iters = 800000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=50000)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=2000),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(0.67 * max_iters), int(0.89 * max_iters)], gamma=0.1),
]
optim_wrapper = dict(type='AmpOptimWrapper', dtype='float16', clip_grad=dict(max_norm=1.0, norm_type=2))
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=2500, max_keep_ckpts=3, save_best='coco/bbox_mAP', rule='greater'),
    logger=dict(interval=50))
log_processor = dict(by_epoch=False)
custom_hooks = [
    # MODEL_EMA 0.999 in the authors' file
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001, update_buffers=True, priority=49),
]
auto_scale_lr = dict(enable=False, base_batch_size=64)
