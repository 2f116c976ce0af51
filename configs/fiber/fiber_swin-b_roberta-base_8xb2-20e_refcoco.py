# FIBER-B fine-tuned for referring expression comprehension on RefCOCO (UNC), arXiv:2206.07643 sections 3.3/4:
# Swin-B + RoBERTa-base fused in the top 6 layers, DyHead/ATSS grounding head; input 800x1333 (multi-scale
# 480-800 short side in training, no flip: flips break "left"/"right"), top-1 box of the expression's tokens.
_base_ = [
    '../_base_/models/fiber_swin-b_roberta-base.py', '../_base_/datasets/refcoco.py',
    '../_base_/schedules/fiber_20e.py', '../_base_/default_runtime.py'
]
dataset_type = 'RefCOCODataset'
data_root = 'data/'
ann_prefix = 'mdetr_annotations/finetune_refcoco'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(type='RandomChoiceResize', resize_type='mmdet.Resize', keep_ratio=True,
         scales=[(1333, 480), (1333, 560), (1333, 640), (1333, 720), (1333, 800)]),
    dict(type='PackGroundingInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadGroundingAnnotations'),
    dict(type='PackGroundingInputs'),
]
img_prefix = dict(img='coco/train2014/')
train_dataloader = dict(
    batch_size=2, num_workers=2,
    dataset=dict(type=dataset_type, ann_file=f'{ann_prefix}_train.json', data_prefix=img_prefix,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2,
    dataset=dict(type=dataset_type, ann_file=f'{ann_prefix}_val.json', data_prefix=img_prefix, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1, num_workers=2,
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type=dataset_type, data_root=data_root, ann_file=f'{ann_prefix}_{split}.json', data_prefix=img_prefix,
             test_mode=True, pipeline=test_pipeline) for split in ('val', 'testA', 'testB')]))
default_hooks = dict(checkpoint=dict(save_best='refexp/Prec@1', rule='greater'))
# The authors fine-tune with an EMA of the weights (0.999) and mixed precision.
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001, update_buffers=True, priority=49),
]
