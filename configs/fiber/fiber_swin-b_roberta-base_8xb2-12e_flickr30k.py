# FIBER-B for phrase grounding on Flickr30k Entities (arXiv:2206.07643, sections 3.3/4; Recall@1/5/10, MDETR's
# any-box protocol on the separateGT files). The paper evaluates its fine-grained pre-trained model directly
# (load_from=...); this config also trains on the Flickr30k train split (12 epochs, the length of the authors'
# Flickr files), with one group of tokens per phrase and per-phrase boxes at test time.
# Layout: data/flickr30k/flickr30k-images/*.jpg, data/mdetr_annotations/final_flickr_separateGT_{train,val,test}.json
_base_ = [
    '../_base_/models/fiber_swin-b_roberta-base.py', '../_base_/schedules/fiber_20e.py',
    '../_base_/default_runtime.py'
]
model = dict(grounding_task='phrase')

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=2000),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=[8, 11], gamma=0.1),
]

dataset_type = 'Flickr30kEntitiesDataset'
data_root = 'data/'
img_prefix = dict(img='flickr30k/flickr30k-images/')
meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction', 'text',
             'split', 'original_id', 'ori_gt_bboxes', 'tokens_positive_eval', 'phrases')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(type='RandomChoiceResize', resize_type='mmdet.Resize', keep_ratio=True,
         scales=[(1333, 480), (1333, 560), (1333, 640), (1333, 720), (1333, 800)]),
    dict(type='PackGroundingInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadGroundingAnnotations'),
    dict(type='PackGroundingInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='mdetr_annotations/final_flickr_separateGT_train.json', data_prefix=img_prefix,
                 test_mode=False, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='mdetr_annotations/final_flickr_separateGT_val.json', data_prefix=img_prefix,
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='mdetr_annotations/final_flickr_separateGT_test.json', data_prefix=img_prefix,
                 test_mode=True, pipeline=test_pipeline))
val_evaluator = dict(type='FlickrRecallMetric', topk=(1, 5, 10), iou_thr=0.5, merge_boxes=False)
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='flickr/Recall@1', rule='greater'))
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001, update_buffers=True, priority=49),
]
