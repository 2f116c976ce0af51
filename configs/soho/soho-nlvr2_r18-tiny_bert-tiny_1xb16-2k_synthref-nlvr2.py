# A tiny SOHO NLVR2 fine-tuning that runs on CPU with no download: SynthRef NLVR2 (the tiny X-VLM NLVR2 config's data:
# generated on first use under data/synthref_nlvr2, pairs of 64x64 scenes of 3-5 shapes with true/false statements of
# 7 comparison templates, each template half true), each image resized to 128x128; the tiny SOHO pre-training's
# model sizes (soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions.py) with the dictionary skipped; the paper's
# NLVR2 model (section 4.2.3): the statement with each image through the single-stream transformer, the two fused
# [CLS] concatenated -> MLP (Linear(128, 128) - LN - GELU - Linear(128, 2)); accuracy on the val statements, overall
# and per template. From scratch, or from the tiny pre-training with
#   --cfg-options load_from=work_dirs/soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions/iter_2000.pth
# (the captions' vocabulary maps onto this one word by word: checkpoint_vocab; its dictionary, gate, MLM and ITM
# heads are dropped: CheckpointKeysHook below allows them).
_base_ = ['../_base_/models/soho_r18-tiny_bert-tiny.py', '../_base_/schedules/soho_tiny_2k.py']
# every word of the SynthRef captions and NLVR2 statements (the tiny X-VLM NLVR2 config's; a test checks it)
nlvr2_vocab = [
    ',', ':', 'a', 'above', 'and', 'are', 'below', 'big', 'blue', 'both', 'bottommost', 'circle', 'circles', 'contain',
    'contains', 'diamond', 'diamonds', 'eight', 'eleven', 'exactly', 'fewer', 'five', 'four', 'from', 'green', 'has',
    'have', 'image', 'images', 'in', 'is', 'left', 'leftmost', 'more', 'nine', 'number', 'object', 'of', 'one',
    'purple', 'red', 'right', 'rightmost', 'same', 'seven', 'six', 'small', 'square', 'squares', 'ten', 'than', 'the',
    'there', 'thirteen', 'three', 'to', 'topmost', 'triangle', 'triangles', 'twelve', 'two', 'white', 'yellow', 'zero'
]
model = dict(
    type='SOHOPairClassifier',
    num_images=2,
    num_classes=2,
    language_model=dict(max_length=40, tokenizer=dict(vocab=nlvr2_vocab)),
    cls_head=dict(type='MLPBlock', hidden_dims=2 * _base_.width))

data_root = 'data/synthref_nlvr2/'
generate = dict(num_pairs=dict(train=2000, val=250), statements_per_pair=2, image_size=64, seed=0)
pair_pipeline = [
    dict(type='ApplyToImagePair', transforms=[dict(type='LoadImageFromFile'),
                                              dict(type='mmdet.Resize', scale=(128, 128), keep_ratio=False)]),
    dict(type='PackNLVR2Inputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='nlvr2_collate'),
    dataset=dict(type='SynthRefNLVR2Dataset', data_root=data_root, ann_file='annotations/nlvr2_train.json',
                 data_prefix=dict(img='images/'), generate=generate, pipeline=pair_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='nlvr2_collate'),
    dataset=dict(type='SynthRefNLVR2Dataset', data_root=data_root, ann_file='annotations/nlvr2_val.json',
                 data_prefix=dict(img='images/'), generate=generate, test_mode=True, pipeline=pair_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ClassificationAccuracy', prefix='nlvr2', group_key='template')
test_evaluator = val_evaluator

auto_scale_lr = dict(enable=False, base_batch_size=16)
default_hooks = dict(checkpoint=dict(save_best='nlvr2/accuracy'))
custom_hooks = [
    dict(type='CheckpointKeysHook',
         allow_unexpected=[r'^(mlm_head|itm_head)\.', r'^neck\.(dictionary|entry_proj|gate)\.'],
         allow_missing=[r'^cls_head\.', r'^language_model\.model\.embeddings\.word_embeddings\.weight$'])
]
