# FIBER-B fine-tuned for COCO object detection as grounding (arXiv:2206.07643, sections 3.3 and 4.1, Table 8):
# the 80 class names joined into one prompt ("person. bicycle. car. ... toothbrush"), each box grounded on its class
# name's tokens; at test time every anchor's token scores are averaged over each class's tokens (the authors'
# SCORE_AGG MEAN) and evaluated with mmdet's CocoMetric (box AP on val2017).
# Training prompts follow the authors' COCO fine-tuning file (e2e_dyhead_SwinT_B_FPN_coco_finetuning_fusion_backbone:
# SEPARATION_TOKENS ". ", RANDOM_SAMPLE_NEG 85, CONTROL_PROB 0.05/0.05/0.5): every positive class plus randomly
# drawn negative classes, shuffled. Input 800x1333 (train short side 480-800, horizontal flip), 24 epochs at
# batch 32 (16 GPUs x 2), box convention of GLIP/FIBER (x2, y2 - 1 in training, + 1 on the predictions).
_base_ = [
    '../_base_/models/fiber_swin-b_roberta-base.py', '../_base_/schedules/fiber_20e.py',
    '../_base_/default_runtime.py'
]
model = dict(
    type='FIBERObjectDetector',
    score_agg='mean',
    # the authors' ATSS inference: class-score threshold 0.05, 1000 boxes per level before NMS (0.6), 100 kept
    test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6),
                  max_per_img=100))

dataset_type = 'mmdet.CocoDataset'
data_root = 'data/coco/'
backend_args = None
meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction', 'text',
             'class_spans')
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='mmdet.GTBoxSubOne_GLIP'),
    dict(type='RandomChoiceResize', resize_type='mmdet.Resize', keep_ratio=True,
         scales=[(1333, 480), (1333, 560), (1333, 640), (1333, 720), (1333, 800)]),
    dict(type='mmdet.RandomFlip_GLIP', prob=0.5),
    dict(type='mmdet.FilterAnnotations', min_gt_bbox_wh=(1, 1)),
    dict(type='DetectionPrompt', separator='. ', random_negatives=True, max_negatives=85,
         control_probs=(0.05, 0.05, 0.5)),
    dict(type='PackGroundingInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='DetectionPrompt', separator='. '),
    dict(type='PackGroundingInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/'), filter_cfg=dict(filter_empty_gt=True, min_size=32),
                 return_classes=True, pipeline=train_pipeline, backend_args=backend_args))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/'), test_mode=True, return_classes=True, pipeline=test_pipeline,
                 backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(type='mmdet.CocoMetric', ann_file=data_root + 'annotations/instances_val2017.json',
                     metric='bbox', format_only=False, backend_args=backend_args)
test_evaluator = val_evaluator

# The paper's fine-grained optimization (configs/_base_/schedules/fiber_20e.py: AdamW, 1e-4 / 1e-5 for RoBERTa,
# weight decay 0.01, 2k warm-up, drops by 10x at 67% and 89%) over the authors' 24 COCO epochs.
max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=2000),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=[16, 21], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(save_best='coco/bbox_mAP', rule='greater'))
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001, update_buffers=True, priority=49),
]
auto_scale_lr = dict(enable=False, base_batch_size=32)
