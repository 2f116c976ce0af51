# A tiny SOHO VQA fine-tuning that runs on CPU with no download: SynthRef VQA (configs/_base_/datasets/synthref_vqa.py:
# generated on first use under data/synthref_vqa, 64x64 scenes, up to 4 questions each about counts, existence,
# colours, shapes and relations), resized to 128x128 as the tiny pre-training; the tiny pre-training config's model
# sizes (soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions.py: ResNet-18 of base width 16, layer4 at stride 1, the
# neck's 2x2 max-pool -> 4x4 visual tokens; 3-layer, 64-wide BERT) with the dictionary skipped (the transformer reads
# the dictionary's input features, as the paper and the released VQA neck), [CLS] -> Linear(64, 256) - ReLU -
# Dropout(0.5) - Linear(256, 19 answers) (the released head's shape), soft-score BCE; VQA accuracy on the val scenes,
# overall and per question type. From scratch, or from the tiny pre-training with
#   --cfg-options load_from=work_dirs/soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions/iter_2000.pth
# (its word embeddings are of the captions' vocabulary and map onto this one word by word: checkpoint_vocab; its
# dictionary, gate, MLM and ITM heads are dropped: CheckpointKeysHook below allows them).
_base_ = ['../_base_/datasets/synthref_vqa.py', '../_base_/default_runtime.py',
          '../_base_/datasets/synthref_captions_vocab.py']
# the questions' words (configs/_base_/datasets/synthref_vqa.py), then the answers' other words
vocab = _base_.question_vocab + [a for a in _base_.answers if a not in _base_.question_vocab]
width = 64
model = dict(
    type='SOHOVQA',
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='mmdet.ResNet', depth=18, base_channels=16, strides=(1, 2, 2, 1), out_indices=(3, ), frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch', init_cfg=None),
    # the pre-training's neck without its dictionary (and so without its gate and entry projection)
    neck=dict(type='SOHONeck', in_channels=128, dictionary=None, pool=True, norm_cfg=dict(type='BN')),
    language_model=dict(
        type='HFTextEncoder', max_length=24,
        model_config=dict(model_type='bert', hidden_size=width, num_hidden_layers=3, num_attention_heads=2,
                          intermediate_size=2 * width),
        tokenizer=dict(type='word', vocab=vocab),
        checkpoint_vocab=_base_.caption_vocab),  # the tiny pre-training's
    vqa_head=dict(type='SOHOVQAHead', answers=_base_.answers, hidden_dims=4 * width, dropout=0.5))

_pipeline = [dict(type='LoadImageFromFile'), dict(type='mmdet.Resize', scale=(128, 128), keep_ratio=False),
             dict(type='PackImageTextInputs')]
train_dataloader = dict(dataset=dict(pipeline=_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_pipeline))
test_dataloader = val_dataloader

max_iters = 2000
warmup_iters = 100
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# One AdamW for every part (the paper's SGD for the backbone is not used in this tiny config), warm-up then linear
# decay; the released fine-tuning's gradient clipping (max norm 10).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
auto_scale_lr = dict(enable=False, base_batch_size=32)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2,
                    save_best='vqa/accuracy', rule='greater'))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
# a SOHO pre-training checkpoint (load_from): its pre-training heads and dictionary parts are not in this model, the
# VQA head is new, the word embeddings are remapped from the captions' vocabulary (checkpoint_vocab)
custom_hooks = [
    dict(type='CheckpointKeysHook',
         allow_unexpected=[r'^(mlm_head|itm_head)\.', r'^neck\.(dictionary|entry_proj|gate)\.'],
         allow_missing=[r'^vqa_head\.', r'^language_model\.model\.embeddings\.word_embeddings\.weight$'])
]
