# The tiny version of X-VLM's text-assignment step before NLVR2 (the authors' NLVR_pretrain.py), on CPU with no
# download: the SynthRef captions (image-caption pairs of the tiny pre-training's corpus, data/synthref_regions), the
# two-image model of xvlm-nlvr2_vit-tiny_bert-tiny_1xb16-2k_synthref-nlvr2.py with a linear ta_head: each caption is
# given its own scene and a hard negative one (left or right) or two hard negatives ("neither", 1/3), drawn by the
# (frozen) ITC image embeddings; 3-way cross entropy. Its last checkpoint initializes the tiny NLVR2 fine-tuning
# (load_from). Initialize it from a single-image X-VLM checkpoint (the tiny pre-training: its caption vocabulary maps
# onto this one by word, checkpoint_vocab) with load_from (each cross
# layer is copied to both images).
_base_ = ['./xvlm-nlvr2_vit-tiny_bert-tiny_1xb16-2k_synthref-nlvr2.py']
model = dict(
    type='XVLMNLVRPretrain',
    cls_head=None,
    itc_head=dict(_delete_=True, type='ITCHead', embed_dims=32, temperature=0.07, temperature_range=(0.001, 0.5),
                  pooler=dict(type='DualStreamPooler', image_pooling='cls', tanh_pooler=False, pool_first=True)),
    ta_head=dict(type='Linear'),
    temperature=0.07,
    neither_prob=1.0 / 3.0)

caption_root = 'data/synthref_regions/'
caption_generate = dict(num_scenes=dict(train=3000, val=200), image_size=64, seed=0)
train_dataloader = dict(
    _delete_=True,
    batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SynthRefImageTextDataset', data_root=caption_root, ann_file='annotations/captions_train.json',
                 data_prefix=dict(img='images/'), generate=caption_generate,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='mmdet.Resize', scale=(64, 64), keep_ratio=False),
                           dict(type='PackRegionTextInputs')]))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None

max_iters = 1000
warmup_iters = 100
train_cfg = dict(type='IterBasedTrainLoop', _delete_=True, max_iters=max_iters, val_interval=max_iters + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'cls_head': dict(lr_mult=1.0), 'ta_head': dict(lr_mult=2.0)}))
default_hooks = dict(
    checkpoint=dict(_delete_=True, type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
