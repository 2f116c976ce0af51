# A tiny X-VLM NLVR2 fine-tuning that runs on CPU with no download: SynthRef NLVR2 (generated on first use under
# data/synthref_nlvr2: pairs of 64x64 scenes of 3-5 shapes with true/false statements of 7 comparison templates, each
# template half true), the tiny pre-training's widths (xvlm_vit-tiny_bert-tiny_1xb16-3k_synthref-regions.py: 64-wide
# ViT, 4-layer 64-wide BERT, layers 2-3 the cross encoder) with each cross layer duplicated per image
# (cross_attention.num_contexts=2; keys and values shared), the MLP classifier on the fused [CLS]; accuracy on the
# val statements, overall and per template. The vocabulary is that of the SynthRef captions and statements, so that
# the tiny text-assignment step (xvlm-nlvr2-pretrain_vit-tiny_bert-tiny_1xb16-1k_synthref-captions.py) initializes it:
#   --cfg-options load_from=work_dirs/xvlm-nlvr2-pretrain_vit-tiny_bert-tiny_1xb16-1k_synthref-captions/iter_1000.pth
# (a checkpoint of the tiny pre-training, of the captions' vocabulary, maps onto this one by word: checkpoint_vocab)
_base_ = ['../_base_/models/xvlm_vit-b-16_bert-base.py', '../_base_/default_runtime.py',
          '../_base_/datasets/synthref_captions_vocab.py', '../_base_/datasets/synthref_nlvr2.py']
width = 64
model = dict(
    type='XVLMNLVR',
    data_preprocessor=dict(pad_size_divisor=8),
    vision_encoder=dict(_delete_=True, type='XVLMViT', img_size=64, patch_size=8, embed_dims=64, depth=4,
                        num_heads=2, local_attn_depth=2, drop_path_rate=0.0),
    language_model=dict(
        _delete_=True, type='HFTextEncoder', max_length=40,
        model_config=dict(model_type='bert', hidden_size=width, num_hidden_layers=4, num_attention_heads=2,
                          intermediate_size=2 * width),
        tokenizer=dict(type='word', vocab=_base_.nlvr2_vocab),
        checkpoint_vocab=_base_.caption_vocab,  # the tiny pre-training's
        cross_attention=dict(start=2, num_contexts=2)),
    itc_head=None, itm_head=None, mlm_head=None, bbox_head=None,
    cls_head=dict(type='MLPBlock', hidden_dims=2 * width))


max_iters = 2000
warmup_iters = 100
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
# the released fine-tuning's 2x lr for the classifier alone (the cross-attention is pre-trained: 1x)
optim_wrapper = dict(optimizer=dict(lr=5e-4),
                     paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0,
                                        bypass_duplicate=True, custom_keys={'cls_head': dict(lr_mult=2.0)}))
auto_scale_lr = dict(enable=False, base_batch_size=16)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2,
                    save_best='nlvr2/accuracy', rule='greater'))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
