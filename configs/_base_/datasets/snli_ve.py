# SNLI-VE (Xie et al., 2019): does a Flickr30k image entail, contradict or leave open a hypothesis; the official
# JSON-lines files (data/snli_ve/snli_ve_{train,dev,test}.jsonl, SNLIVEDataset: labels 0 entailment, 1 neutral,
# 2 contradiction), Flickr30k images under data/flickr30k/flickr30k_images/; accuracy (ClassificationAccuracy). A
# model config sets its pipelines (the one below only loads the image and packs it with the hypothesis and its
# label) and the batch size:
#   train_dataloader = dict(batch_size=..., dataset=dict(pipeline=train_pipeline)), and val / test likewise
data_root = 'data/'
image_root = 'flickr30k/flickr30k_images/'
ann_files = dict(train='snli_ve/snli_ve_train.jsonl', val='snli_ve/snli_ve_dev.jsonl',
                 test='snli_ve/snli_ve_test.jsonl')
ve_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction', 'text',
                'text_id', 'split', 'label')
ve_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackImageTextInputs', meta_keys=ve_meta_keys)]
train_dataloader = dict(
    batch_size=16, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='SNLIVEDataset', data_root=data_root, ann_file=ann_files['train'],
                 data_prefix=dict(img=image_root), pipeline=ve_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SNLIVEDataset', data_root=data_root, ann_file=ann_files['val'],
                 data_prefix=dict(img=image_root), test_mode=True, pipeline=ve_pipeline))
test_dataloader = dict(
    batch_size=32, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SNLIVEDataset', data_root=data_root, ann_file=ann_files['test'],
                 data_prefix=dict(img=image_root), test_mode=True, pipeline=ve_pipeline))
val_evaluator = dict(type='ClassificationAccuracy', prefix='ve')
test_evaluator = val_evaluator
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
