# NLVR2 (Suhr et al., 2019): a statement about a pair of images, true or false; train / dev / test-P in the files
# X-VLM's authors distribute (data/finetune/nlvr_{train,dev,test}.json, NLVR2Dataset; the official JSON lines are
# read too), images under data/images/nlvr2/. Each sample is one statement with its two images
# (ApplyToImagePair, PackNLVR2Inputs; nlvr2_collate puts the left and right image of statement i at 2i and 2i + 1);
# accuracy (ClassificationAccuracy). A model config sets its pipelines (the ones below only load and pack the two
# images) and the batch size:
#   train_dataloader = dict(batch_size=..., dataset=dict(pipeline=train_pipeline)), and val / test likewise
data_root = 'data/'
image_root = 'images/nlvr2/'
ann_files = dict(train='finetune/nlvr_train.json', val='finetune/nlvr_dev.json', test='finetune/nlvr_test.json')
nlvr2_pipeline = [dict(type='ApplyToImagePair', transforms=[dict(type='LoadImageFromFile')]),
                  dict(type='PackNLVR2Inputs')]
train_dataloader = dict(
    batch_size=16, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='nlvr2_collate'),
    dataset=dict(type='NLVR2Dataset', data_root=data_root, ann_file=ann_files['train'],
                 data_prefix=dict(img=image_root), pipeline=nlvr2_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='nlvr2_collate'),
    dataset=dict(type='NLVR2Dataset', data_root=data_root, ann_file=ann_files['val'],
                 data_prefix=dict(img=image_root), test_mode=True, pipeline=nlvr2_pipeline))
test_dataloader = dict(
    batch_size=16, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='nlvr2_collate'),
    dataset=dict(type='NLVR2Dataset', data_root=data_root, ann_file=ann_files['test'],
                 data_prefix=dict(img=image_root), test_mode=True, pipeline=nlvr2_pipeline))
val_evaluator = dict(type='ClassificationAccuracy', prefix='nlvr2')
test_evaluator = val_evaluator
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
