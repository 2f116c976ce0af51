# Tiny supervised X-VLM REC on SynthRef that trains on 2 CPU cores in minutes: the model of the tiny pre-training
# config (xvlm_vit-tiny_bert-tiny_1xb16-3k_synthref-regions.py: a 64-wide ViT, patch 8, mixed attention in its last 2
# of 4 blocks; a 4-layer, 64-wide BERT over the SynthRef caption vocabulary, layers 2-3 the cross encoder) with only
# the box head on the cross [CLS] of (image, expression): L1 + GIoU, as the released Grounding_bbox. SynthRef's REC
# sets (generated on first use under data/synthref, 128 px scenes) resized to 64x64, as the pre-training; flips swap
# left/right in the expression. Validation on val, test on val/testA/testB: Prec@0.5 (RefExpMetric).
# Initialized from the tiny pre-training: --cfg-options load_from=work_dirs/<pre-training run>/iter_3000.pth
# (same vocabulary and widths; its ITC/ITM/MLM heads are dropped: CheckpointKeysHook below allows them).
_base_ = ['../_base_/models/xvlm_vit-b-16_bert-base.py', '../_base_/datasets/synthref.py',
          '../_base_/default_runtime.py',
          '../_base_/datasets/synthref_captions_vocab.py']
width = 64
model = dict(
    type='XVLMGrounding',
    data_preprocessor=dict(pad_size_divisor=8),
    vision_encoder=dict(_delete_=True, type='XVLMViT', img_size=64, patch_size=8, embed_dims=64, depth=4,
                        num_heads=2, local_attn_depth=2, drop_path_rate=0.0),
    language_model=dict(
        _delete_=True, type='HFTextEncoder', max_length=40,
        model_config=dict(model_type='bert', hidden_size=width, num_hidden_layers=4, num_attention_heads=2,
                          intermediate_size=2 * width),
        tokenizer=dict(type='word', vocab=_base_.caption_vocab),
        cross_attention=dict(start=2)),
    itc_head=None,
    itm_head=None,
    mlm_head=None,
    bbox_head=dict(mlp=dict(hidden_dims=2 * width)))

resize = dict(type='mmdet.Resize', scale=(64, 64), keep_ratio=False)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(type='GroundingRandomFlip', prob=0.5),
    resize,
    dict(type='PackGroundingInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), resize, dict(type='LoadGroundingAnnotations'),
                 dict(type='PackGroundingInputs')]
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(datasets=[dict(d, pipeline=test_pipeline)
                                              for d in _base_.test_dataloader.dataset.datasets]))
# one box per expression: Prec@1 at IoU 0.5
val_evaluator = dict(type='RefExpMetric', topk=(1, ), iou_thr=0.5)
test_evaluator = val_evaluator

max_epochs = 3
iters_per_epoch = 16000 // 32  # 8000 train scenes x 2 expressions
warmup_iters = 100
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# from scratch (or from the tiny pre-training), one lr for all: no paramwise groups
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters,
         end=max_epochs * iters_per_epoch),
]
auto_scale_lr = dict(enable=False, base_batch_size=32)
custom_hooks = [dict(type='CheckpointKeysHook', allow_unexpected=[r'^(itc_head|itm_head|mlm_head)\.'])]
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(interval=1, max_keep_ckpts=1, save_best='refexp/Prec@1', rule='greater'))
