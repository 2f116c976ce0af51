# A tiny FIBER VQA fine-tuning that runs on CPU with no download: SynthRef VQA (generated on first use under
# data/synthref_vqa: 64x64 scenes of 3-5 shapes, up to 4 questions each about counts, existence, colours, shapes
# and relations; VQA v2 format, mmvlg/datasets/synthetic/vqa.py), a 16-wide Swin (depths 1-1-2-1) and a 3-layer,
# 32-wide RoBERTa over the questions' words, fused in their top 2 layers (the tiny coarse config's sizes), trained
# from scratch; the pooled text and image features through the VQA classifier over the 19 possible answers;
# VQA accuracy on the val scenes.
_base_ = ['../_base_/schedules/fiber_vqa_10e.py', '../_base_/default_runtime.py']
# every word of the questions (mmvlg.datasets.synthref_vqa.question_vocabulary(); a test checks it)
question_vocab = [
    '?', 'a', 'above', 'are', 'below', 'big', 'blue', 'bottommost', 'circle', 'circles', 'color', 'diamond',
    'diamonds', 'green', 'how', 'is', 'left', 'leftmost', 'many', 'object', 'of', 'purple', 'red', 'right',
    'rightmost', 'shape', 'small', 'square', 'squares', 'the', 'there', 'topmost', 'triangle', 'triangles', 'what',
    'white', 'yellow'
]
# every possible answer (mmvlg.datasets.synthref_vqa.synthref_vqa_answers(); a test checks it)
answers = ['yes', 'no', '0', '1', '2', '3', '4', '5', '6', 'red', 'green', 'blue', 'yellow', 'purple', 'white',
           'circle', 'square', 'triangle', 'diamond']
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
            tokenizer=dict(type='word', vocab=question_vocab))),
    vqa_head=dict(type='VQAHead', answers=answers, loss_weight=1.0))

data_root = 'data/synthref_vqa/'
generate = dict(num_scenes=dict(train=4000, val=300), questions_per_scene=4, image_size=64, seed=0)
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackImageTextInputs')]
train_dataloader = dict(
    batch_size=32, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SynthRefVQADataset', data_root=data_root, ann_file='annotations/questions_train.json',
                 answer_file='annotations/answers_train.json', data_prefix=dict(img='images/'), generate=generate,
                 answer_list=answers, pipeline=pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SynthRefVQADataset', data_root=data_root, ann_file='annotations/questions_val.json',
                 answer_file='annotations/answers_val.json', data_prefix=dict(img='images/'), generate=generate,
                 answer_list=answers, test_mode=True, pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='VQAAccuracy')
test_evaluator = val_evaluator

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
