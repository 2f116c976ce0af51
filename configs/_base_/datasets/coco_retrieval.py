# COCO image-text retrieval, the Karpathy split (5k val and 5k test images with 5 captions each, the rest for
# training), in the files X-VLM's authors distribute (data/finetune/coco_{train,val,test}.json: JSON lists of
# {"image", "caption", "image_id"} for training and {"image", "caption": [5 captions]} for val/test; CaptionDataset,
# ann_format='list'), images under data/images/coco/. Recall@1/5/10 both ways over the whole test gallery
# (RetrievalValLoop / RetrievalTestLoop, RetrievalRecallMetric). A model config sets its pipelines (the ones below
# only load and pack the images) and the training batch size:
#   train_dataloader = dict(batch_size=..., dataset=dict(pipeline=train_pipeline))
#   val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
#   test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
data_root = 'data/'
image_root = 'images/coco/'
ann_files = dict(train='finetune/coco_train.json', val='finetune/coco_val.json', test='finetune/coco_test.json')
retrieval_train_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackImageTextInputs')]
retrieval_test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackImageTextInputs')]
train_dataloader = dict(
    batch_size=32, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CaptionDataset', data_root=data_root, ann_file=ann_files['train'], ann_format='list',
                 data_prefix=dict(img=image_root), pipeline=retrieval_train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CaptionDataset', data_root=data_root, ann_file=ann_files['val'], ann_format='list',
                 data_prefix=dict(img=image_root), test_mode=True, pipeline=retrieval_test_pipeline))
test_dataloader = dict(
    batch_size=64, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CaptionDataset', data_root=data_root, ann_file=ann_files['test'], ann_format='list',
                 data_prefix=dict(img=image_root), test_mode=True, pipeline=retrieval_test_pipeline))
val_evaluator = dict(type='RetrievalRecallMetric', topk=(1, 5, 10))
test_evaluator = val_evaluator
val_cfg = dict(type='RetrievalValLoop')
test_cfg = dict(type='RetrievalTestLoop')
