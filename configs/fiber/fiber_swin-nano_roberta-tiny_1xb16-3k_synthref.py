# A tiny fine-grained FIBER (fusion in the backbone + DyHead/ATSS grounding head) for referring expression
# comprehension on SynthRef, sized to train from scratch on a 2-core CPU in about 20 minutes. Same structure as
# the Swin-B/RoBERTa-base RefCOCO config, scaled down: a 32-wide Swin (depths 1-1-2-1, window 4) and a 3-layer,
# 64-wide RoBERTa over SynthRef's words, gated cross-attention in their top 2 layers; an FPN on stages 2-4 (P3-P5,
# 64 channels, no extra levels: 128x128 images), one DyHead block without deformable convolutions, anchors of
# 24/48/96 pixels (SynthRef's objects are 18-38 pixels wide; the reference anchors start at 64); the top-1 box of
# the referent's tokens is the answer (Prec@1 at IoU 0.5 on SynthRef val).
_base_ = [
    '../_base_/models/fiber_swin-b_roberta-base.py', '../_base_/datasets/synthref.py',
    '../_base_/default_runtime.py'
]
embed_dims = 64
model = dict(
    backbone=dict(
        num_fusion_layers=2,
        visual=dict(_delete_=True, type='mmdet.SwinTransformer', embed_dims=32, depths=(1, 1, 2, 1),
                    num_heads=(1, 2, 4, 8), window_size=4, drop_path_rate=0.0, out_indices=(1, 2, 3)),
        visual_checkpoint=None,
        language_model=dict(
            _delete_=True, type='HFTextEncoder', max_length=32,
            model_config=dict(model_type='roberta', hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                              intermediate_size=128),
            tokenizer=dict(type='word', vocab='synthref'))),
    neck=dict(in_channels=[64, 128, 256], out_channels=embed_dims, num_outs=3),
    bbox_head=dict(
        in_channels=embed_dims, feat_channels=embed_dims, lang_dim=64, num_dyhead_blocks=1, use_dcn=False,
        anchor_generator=dict(octave_base_scale=3, strides=[8, 16, 32])))

# The detector maps boxes back to the original image with scale_factor: a Resize to SynthRef's 128x128 (a no-op
# for the default data) sets it in the test pipeline.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadGroundingAnnotations'),
    dict(type='PackGroundingInputs'),
]
# No worker process: decoding 128x128 PNGs is cheap, and a worker would compete with the two compute threads.
train_dataloader = dict(batch_size=16, num_workers=0, persistent_workers=False,
                        sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True))
val_dataloader = dict(batch_size=64, num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64, num_workers=0, persistent_workers=False,
    dataset=dict(datasets=[
        dict(type=_base_.dataset_type, data_root=_base_.data_root, data_prefix=dict(img='images/'),
             ann_file=f'annotations/finetune_synthref_{split}.json', generate=_base_.synthref_generate, test_mode=True,
             pipeline=test_pipeline) for split in ('val', 'testA', 'testB')]))

# From scratch on CPU: one learning rate (no per-module multipliers: mmengine would step AdamW per parameter),
# warm-up then linear decay, gradients clipped.
max_iters = 3000
warmup_iters = 200
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
                     clip_grad=dict(max_norm=5.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=2,
                    save_best='refexp/Prec@1', rule='greater'))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
