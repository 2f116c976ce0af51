# RefCOCO (UNC split) in MDETR's annotation format; SiRi's input: max side 640 keeping the aspect ratio. The base
# of ./refcoco+.py and ./refcocog.py, which change only the dataset type and the annotation files.
# Layout: data/coco/train2014/*.jpg, data/mdetr_annotations/finetune_refcoco_{train,val,testA,testB}.json
dataset_type = 'RefCOCODataset'
data_root = 'data/'
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadGroundingAnnotations'),
    dict(type='GroundingRandomFlip', prob=0.5),
    dict(type='RandomCropKeepBoxes', min_ratio=0.6, prob=0.5),
    dict(type='mmdet.Resize', scale=(640, 640), keep_ratio=True),
    dict(type='PackGroundingInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=(640, 640), keep_ratio=True),
    dict(type='LoadGroundingAnnotations'),
    dict(type='PackGroundingInputs'),
]

train_dataloader = dict(
    batch_size=18, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='mdetr_annotations/finetune_refcoco_train.json',
             data_prefix=dict(img='coco/train2014/'), test_mode=False, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=18, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='mdetr_annotations/finetune_refcoco_val.json',
             data_prefix=dict(img='coco/train2014/'), test_mode=True, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=18, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type=dataset_type, data_root=data_root, ann_file='mdetr_annotations/finetune_refcoco_val.json',
             data_prefix=dict(img='coco/train2014/'), test_mode=True, pipeline=test_pipeline),
        dict(type=dataset_type, data_root=data_root, ann_file='mdetr_annotations/finetune_refcoco_testA.json',
             data_prefix=dict(img='coco/train2014/'), test_mode=True, pipeline=test_pipeline),
        dict(type=dataset_type, data_root=data_root, ann_file='mdetr_annotations/finetune_refcoco_testB.json',
             data_prefix=dict(img='coco/train2014/'), test_mode=True, pipeline=test_pipeline),
    ]))
val_evaluator = dict(type='RefExpMetric', topk=(1, 5, 10), iou_thr=0.5)
test_evaluator = val_evaluator
