# A tiny SOHO pre-training that runs on CPU with no download: the SynthRef caption corpus (the tiny FIBER coarse
# config's data, generated on first use under data/synthref_captions: 64x64 scenes of 3-5 shapes, three
# descriptions each), resized to 128x128; a ResNet-18 of base width 16 (C5: 128 channels; layer4 at stride 1, so
# C5 is 8x8 and the neck's 2x2 max-pool gives 4x4 = 16 visual tokens), a 64-entry visual dictionary with the
# released code's update (momentum 0.4, Laplace-smoothed counts) and gate, and a 3-layer, 64-wide BERT over the
# corpus' word vocabulary running over [CLS] caption [SEP] + the visual tokens; MLM + MVM (p = 0.015) + ITM
# (4 texts per image, Binomial(4, 0.5) negatives from the batch), equal weights, random initialization.
# Validation: image-text retrieval on the 200 val scenes (600 captions), every pair scored by ITM (SOHO has no
# dual encoder), Recall@1/5/10 both ways.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/synthref_captions_vocab.py']
width = 64
model = dict(
    type='SOHO',
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='mmdet.ResNet', depth=18, base_channels=16, strides=(1, 2, 2, 1), out_indices=(3, ), frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch', init_cfg=None),
    neck=dict(
        type='SOHONeck', in_channels=128, fusion='gate', project_entries=True, pool=True,
        norm_cfg=dict(type='BN'),
        dictionary=dict(type='VisualDictionary', num_entries=64, momentum=0.4, update='code')),
    language_model=dict(
        type='HFTextEncoder', max_length=40,
        model_config=dict(model_type='bert', hidden_size=width, num_hidden_layers=3, num_attention_heads=2,
                          intermediate_size=2 * width),
        tokenizer=dict(type='word', vocab=_base_.caption_vocab)),
    mlm_head=dict(type='MLMHead', tie_word_embeddings=True, loss_weight=1.0),
    itm_head=dict(type='ITMHead', loss_weight=1.0),
    mvm_cfg=dict(mask_prob=0.015, temperature=1.0, loss_weight=1.0),
    itm_cfg=dict(texts_per_image=4, rule='binomial', neg_prob=0.5),
    mlm_mvm_on_negatives=True,
    retrieval_cfg=dict(batch_size=256))

data_root = 'data/synthref_captions/'
generate = dict(num_scenes=dict(train=4000, val=200), image_size=64, phrasings=['list', 'left-to-right', 'count'],
                seed=0)
pipeline = [dict(type='LoadImageFromFile'), dict(type='mmdet.Resize', scale=(128, 128), keep_ratio=False),
            dict(type='PackImageTextInputs')]
train_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SynthRefCaptionDataset', data_root=data_root, ann_file='annotations/captions_train.json',
                 data_prefix=dict(img='images/'), generate=generate, pipeline=pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SynthRefCaptionDataset', data_root=data_root, ann_file='annotations/captions_val.json',
                 data_prefix=dict(img='images/'), generate=generate, test_mode=True, pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='RetrievalRecallMetric', topk=(1, 5, 10))
test_evaluator = val_evaluator
val_cfg = dict(type='RetrievalValLoop')
test_cfg = dict(type='RetrievalTestLoop')

max_iters = 2000
warmup_iters = 100
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
# The paper's step schedule (x0.1 at 25 and 35 of 40 epochs) on the iteration budget, after a linear warm-up.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='MultiStepLR', by_epoch=False, milestones=[1250, 1750], gamma=0.1, begin=0, end=max_iters),
]
# One AdamW for every part (the paper's SGD for the backbone is not used in this tiny config); the code's
# gradient clipping (max norm 10).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.01),
    # bypass_duplicate: the MLM decoder is the word-embedding matrix (tied), one parameter in one group
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, bypass_duplicate=True),
    clip_grad=dict(max_norm=10.0, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=16)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=2,
                    save_best='retrieval/R_mean', rule='greater'))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
