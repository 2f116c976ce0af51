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
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/synthref_captions_vocab.py']
# every word of the SynthRef captions and NLVR2 statements (the tiny X-VLM NLVR2 config's; a test checks it)
nlvr2_vocab = [
    ',', ':', 'a', 'above', 'and', 'are', 'below', 'big', 'blue', 'both', 'bottommost', 'circle', 'circles', 'contain',
    'contains', 'diamond', 'diamonds', 'eight', 'eleven', 'exactly', 'fewer', 'five', 'four', 'from', 'green', 'has',
    'have', 'image', 'images', 'in', 'is', 'left', 'leftmost', 'more', 'nine', 'number', 'object', 'of', 'one',
    'purple', 'red', 'right', 'rightmost', 'same', 'seven', 'six', 'small', 'square', 'squares', 'ten', 'than', 'the',
    'there', 'thirteen', 'three', 'to', 'topmost', 'triangle', 'triangles', 'twelve', 'two', 'white', 'yellow', 'zero'
]
width = 64
model = dict(
    type='SOHOPairClassifier',
    num_images=2,
    num_classes=2,
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='mmdet.ResNet', depth=18, base_channels=16, strides=(1, 2, 2, 1), out_indices=(3, ), frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch', init_cfg=None),
    # the pre-training's neck without its dictionary (and so without its gate and entry projection)
    neck=dict(type='SOHONeck', in_channels=128, dictionary=None, pool=True, norm_cfg=dict(type='BN')),
    language_model=dict(
        type='HFTextEncoder', max_length=40,
        model_config=dict(model_type='bert', hidden_size=width, num_hidden_layers=3, num_attention_heads=2,
                          intermediate_size=2 * width),
        tokenizer=dict(type='word', vocab=nlvr2_vocab),
        checkpoint_vocab=_base_.caption_vocab),  # the tiny pre-training's
    cls_head=dict(type='MLPBlock', hidden_dims=2 * width))

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

max_iters = 2000
warmup_iters = 100
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# One AdamW for every part, warm-up then linear decay; gradient clipping (max norm 10) as the pre-training.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2,
                    save_best='nlvr2/accuracy', rule='greater'))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
custom_hooks = [
    dict(type='CheckpointKeysHook',
         allow_unexpected=[r'^(mlm_head|itm_head)\.', r'^neck\.(dictionary|entry_proj|gate)\.'],
         allow_missing=[r'^cls_head\.', r'^language_model\.model\.embeddings\.word_embeddings\.weight$'])
]
