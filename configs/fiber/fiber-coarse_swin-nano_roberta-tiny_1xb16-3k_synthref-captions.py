# A tiny FIBER coarse-grained pre-training that runs on CPU with no download: the SynthRef caption corpus
# (generated on first use under data/synthref_captions: 64x64 scenes of 3-5 shapes, three descriptions each),
# a 16-wide Swin (depths 1-1-2-1) and a 3-layer, 32-wide RoBERTa over the corpus' word vocabulary, fused in their
# top 2 layers; ITC + ITM (hard negatives) + MLM; validation by image-text retrieval on the val scenes with the
# dual encoder and ITM re-ranking of the top 5.
_base_ = ['../_base_/schedules/fiber_coarse_100k.py', '../_base_/default_runtime.py',
          '../_base_/datasets/synthref_captions_vocab.py']
embed_dims = 32
model = dict(
    type='FIBERCoarse',
    embed_dims=embed_dims,
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='FIBERBackbone',
        num_fusion_layers=2,
        visual=dict(type='mmdet.SwinTransformer', embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2),
                    window_size=4, drop_path_rate=0.0, out_indices=(3, )),
        language_model=dict(
            type='HFTextEncoder', max_length=40,
            model_config=dict(model_type='roberta', hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                              intermediate_size=64),
            tokenizer=dict(type='word', vocab=_base_.caption_vocab))),
    itc_head=dict(type='ITCHead', embed_dims=embed_dims, temperature=0.07, loss_weight=1.0),
    itm_head=dict(type='ITMHead', loss_weight=1.0),
    mlm_head=dict(type='MLMHead', loss_weight=1.0),
    mlm_cfg=dict(mask_prob=0.15, replace_prob=0.8, random_prob=0.1),
    rerank_cfg=dict(k=5, itm_weight=1.0, batch_size=64))

data_root = 'data/synthref_captions/'
generate = dict(num_scenes=dict(train=4000, val=200), image_size=64, phrasings=['list', 'left-to-right', 'count'],
                seed=0)
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackImageTextInputs')]
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

max_iters = 3000
warmup_iters = 100
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
optim_wrapper = dict(optimizer=dict(lr=5e-4))
auto_scale_lr = dict(enable=False, base_batch_size=16)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=2,
                    save_best='retrieval/R_mean', rule='greater'))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
