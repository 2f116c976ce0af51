# A tiny X-VLM image-text retrieval fine-tuning that runs on CPU with no download: the tiny pre-training config's
# model (xvlm_vit-tiny_bert-tiny_1xb16-3k_synthref-regions.py: 64-wide ViT with mixed attention, 4-layer BERT over
# the SynthRef vocabulary) without its MLM and box heads, fine-tuned with ITC (the captions of one scene are
# positives of each other) and ITM (hard negatives) on the scene captions of a SynthRef region-text corpus of other
# scenes than the pre-training's (seed 1: 1000 training scenes, 3 captions each; 200 validation scenes), 1000
# iterations of 16. Validation: retrieval on the validation scenes, ITC top-16 ranked by ITM, Recall@1/5/10 both
# ways. From scratch as is; from the tiny pre-training with --cfg-options load_from=/path/to/its/iter_3000.pth.
_base_ = ['./xvlm_vit-tiny_bert-tiny_1xb16-3k_synthref-regions.py']

model = dict(mlm_head=None, bbox_head=None, rerank_cfg=dict(k=16, add_similarity=False, batch_size=64))
# a pre-training checkpoint's MLM and box heads are not part of this model (load_from drops them by name)
custom_hooks = [dict(type='CheckpointKeysHook', allow_unexpected=[r'^mlm_head\.', r'^bbox_head\.'])]

data_root = 'data/synthref_regions_seed1/'
generate = dict(num_scenes=dict(train=1000, val=200), image_size=64, seed=1)
resize = dict(type='mmdet.Resize', scale=(64, 64), keep_ratio=False)
train_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(_delete_=True, type='SynthRefImageTextDataset', data_root=data_root,
                 ann_file='annotations/captions_train.json', data_prefix=dict(img='images/'), generate=generate,
                 pipeline=[dict(type='LoadImageFromFile'), resize, dict(type='PackRegionTextInputs')]))
val_dataloader = dict(dataset=dict(data_root=data_root, generate=generate))
test_dataloader = val_dataloader

max_iters = 1000
warmup_iters = 50
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
optim_wrapper = dict(optimizer=dict(lr=3e-4))
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=1,
                    save_best='retrieval/R_mean', rule='greater'))
