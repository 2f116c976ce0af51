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
_base_ = ['../_base_/datasets/synthref_nlvr2.py', '../_base_/models/soho_r18-tiny_bert-tiny.py',
          '../_base_/schedules/soho_tiny_2k.py']
model = dict(
    type='SOHOPairClassifier',
    num_images=2,
    num_classes=2,
    language_model=dict(max_length=40, tokenizer=dict(vocab=_base_.nlvr2_vocab)),
    cls_head=dict(type='MLPBlock', hidden_dims=2 * _base_.width))

pair_pipeline = [
    dict(type='ApplyToImagePair', transforms=[dict(type='LoadImageFromFile'),
                                              dict(type='mmdet.Resize', scale=(128, 128), keep_ratio=False)]),
    dict(type='PackNLVR2Inputs'),
]
train_dataloader = dict(dataset=dict(pipeline=pair_pipeline))
val_dataloader = dict(dataset=dict(pipeline=pair_pipeline))
test_dataloader = val_dataloader

auto_scale_lr = dict(enable=False, base_batch_size=16)
default_hooks = dict(checkpoint=dict(save_best='nlvr2/accuracy'))
custom_hooks = [
    dict(type='CheckpointKeysHook',
         allow_unexpected=[r'^(mlm_head|itm_head)\.', r'^neck\.(dictionary|entry_proj|gate)\.'],
         allow_missing=[r'^cls_head\.', r'^language_model\.model\.embeddings\.word_embeddings\.weight$'])
]
