# A tiny X-VLM VQA fine-tuning that runs on CPU with no download: SynthRef VQA (the FIBER tiny VQA config's data:
# generated on first use under data/synthref_vqa, 64x64 scenes, up to 4 questions each about counts, existence,
# colours, shapes and relations), the tiny pre-training config's model sizes (a 64-wide ViT, patch 8, 4 blocks; a
# 4-layer, 64-wide BERT: layers 0-1 the text encoder, 2-3 the cross encoder) and the answer decoder of X-VLM: 2
# layers (the cross encoder's depth) initialized from the cross encoder, trained on the annotators' answers weighted
# by their share; inference ranks the 19 possible answers (top 8 by the first token, then by the full sequence).
# VQA accuracy on the val scenes. Trained from scratch, or from the tiny pre-training with
# --cfg-options load_from=work_dirs/xvlm_vit-tiny_bert-tiny_1xb16-3k_synthref-regions/iter_3000.pth: its word
# embeddings are of the captions' vocabulary and map onto this one word by word (checkpoint_vocab).
_base_ = ['../_base_/datasets/synthref_vqa.py', '../_base_/default_runtime.py',
          '../_base_/datasets/synthref_captions_vocab.py']
# the questions' words (configs/_base_/datasets/synthref_vqa.py), then the answers' other words
vocab = _base_.question_vocab + [a for a in _base_.answers if a not in _base_.question_vocab]
width = 64
model = dict(
    type='XVLMVQA',
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', bgr_to_rgb=True, pad_size_divisor=8,
        mean=[122.7709, 116.7460, 104.0937], std=[68.5005, 66.6322, 70.3232]),
    vision_encoder=dict(type='XVLMViT', img_size=64, patch_size=8, embed_dims=64, depth=4, num_heads=2,
                        local_attn_depth=2, drop_path_rate=0.0),
    language_model=dict(
        type='HFTextEncoder', max_length=24,
        model_config=dict(model_type='bert', hidden_size=width, num_hidden_layers=4, num_attention_heads=2,
                          intermediate_size=2 * width),
        tokenizer=dict(type='word', vocab=vocab),
        checkpoint_vocab=_base_.caption_vocab,  # the tiny pre-training's
        cross_attention=dict(start=2)),
    answer_list=_base_.answers,
    answer_head=dict(type='AnswerGenerationHead', num_layers=2),
    k_test=8,
    answer_weight='count')

# From scratch on CPU: one learning rate for every part, warm-up then linear decay.
max_iters = 1000
warmup_iters = 50
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(type='OptimWrapper', clip_grad=dict(max_norm=1.0),
                     optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01))
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
