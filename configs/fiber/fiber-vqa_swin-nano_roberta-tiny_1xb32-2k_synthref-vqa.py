# A tiny FIBER VQA fine-tuning that runs on CPU with no download: SynthRef VQA (generated on first use under
# data/synthref_vqa: 64x64 scenes of 3-5 shapes, up to 4 questions each about counts, existence, colours, shapes
# and relations; VQA v2 format, mmvlg/datasets/synthetic/vqa.py), a 16-wide Swin (depths 1-1-2-1) and a 3-layer,
# 32-wide RoBERTa over the questions' words, fused in their top 2 layers (the tiny coarse config's sizes), trained
# from scratch; the pooled text and image features through the VQA classifier over the 19 possible answers;
# VQA accuracy on the val scenes. From the tiny coarse pre-training (FIBER fine-tunes VQA from its coarse model):
# --cfg-options load_from=work_dirs/fiber-coarse_swin-nano_roberta-tiny_1xb16-3k_synthref-captions/iter_3000.pth; its
# word embeddings are of the captions' vocabulary and map onto the questions' by word (checkpoint_vocab).
_base_ = ['../_base_/datasets/synthref_vqa.py', '../_base_/schedules/fiber_vqa_10e.py',
          '../_base_/default_runtime.py', '../_base_/datasets/synthref_captions_vocab.py']
# the questions' words, then the answers' other words (as X-VLM's tiny VQA config)
vocab = _base_.question_vocab + [a for a in _base_.answers if a not in _base_.question_vocab]
embed_dims = 32
model = dict(
    type='FIBERVQA',
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
            type='HFTextEncoder', max_length=24,
            model_config=dict(model_type='roberta', hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                              intermediate_size=64),
            tokenizer=dict(type='word', vocab=vocab),
            checkpoint_vocab=_base_.caption_vocab)),  # the tiny coarse pre-training's
    vqa_head=dict(type='VQAHead', answers=_base_.answers, loss_weight=1.0))

# From scratch on CPU: one learning rate (no per-module multipliers: mmengine would step AdamW per parameter),
# 2k iterations of batch 32 (about 4 epochs), warm-up then linear decay.
max_iters = 2000
warmup_iters = 100
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.01))
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
