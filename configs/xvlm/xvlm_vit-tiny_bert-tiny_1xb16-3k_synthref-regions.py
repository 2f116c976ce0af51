# A tiny X-VLM pre-training that runs on CPU with no download: the SynthRef region-text corpus (generated on first
# use under data/synthref_regions: 64x64 scenes of 3-5 shapes; objects with their attributes and relation
# expressions as boxed regions, the scene captions as whole-image captions and as plain image-text pairs), a
# 64-wide ViT (patch 8, 4 blocks, mixed attention in the last 2) and a 4-layer, 64-wide BERT over the corpus' word
# vocabulary (layers 0-1 the text encoder, 2-3 the cross encoder); ITC + ITM + MLM at image and region level and the
# box loss; about half of each batch has boxes (the paper's mix: the region set repeated 3 times next to the 3
# captions per scene of the pairs). Validation: image-text retrieval on the val scenes, ITC top-16 ranked by ITM.
_base_ = ['../_base_/models/xvlm_vit-b-16_bert-base.py', '../_base_/default_runtime.py',
          '../_base_/datasets/synthref_captions_vocab.py']
width = 64
model = dict(
    data_preprocessor=dict(pad_size_divisor=8),
    vision_encoder=dict(_delete_=True, type='XVLMViT', img_size=64, patch_size=8, embed_dims=64, depth=4,
                        num_heads=2, local_attn_depth=2, drop_path_rate=0.0),
    language_model=dict(
        _delete_=True, type='HFTextEncoder', max_length=40,
        model_config=dict(model_type='bert', hidden_size=width, num_hidden_layers=4, num_attention_heads=2,
                          intermediate_size=2 * width),
        tokenizer=dict(type='word', vocab=_base_.caption_vocab),
        cross_attention=dict(start=2)),
    itc_head=dict(embed_dims=32),
    itm_head=dict(hidden_dims=2 * width),
    # the released rule; at most 4 targets in these short texts
    mlm_head=dict(masking=dict(max_masks=4)),
    bbox_head=dict(mlp=dict(hidden_dims=2 * width)),
    rerank_cfg=dict(k=16, batch_size=64))

data_root = 'data/synthref_regions/'
generate = dict(num_scenes=dict(train=3000, val=200), image_size=64, seed=0)
resize = dict(type='mmdet.Resize', scale=(64, 64), keep_ratio=False)
region_pipeline = [dict(type='LoadImageFromFile'), dict(type='RegionTextSampler', max_regions=5, min_inside=0.5),
                   resize, dict(type='PackRegionTextInputs')]
pair_pipeline = [dict(type='LoadImageFromFile'), resize, dict(type='PackRegionTextInputs')]
train_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='RepeatDataset', times=3,
             dataset=dict(type='SynthRefRegionTextDataset', data_root=data_root,
                          ann_file='annotations/regions_train.jsonl', data_prefix=dict(img='images/'),
                          generate=generate, pipeline=region_pipeline)),
        dict(type='SynthRefImageTextDataset', data_root=data_root, ann_file='annotations/captions_train.json',
             data_prefix=dict(img='images/'), generate=generate, pipeline=pair_pipeline),
    ]))
val_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SynthRefImageTextDataset', data_root=data_root, ann_file='annotations/captions_val.json',
                 data_prefix=dict(img='images/'), generate=generate, test_mode=True,
                 pipeline=[dict(type='LoadImageFromFile'), resize, dict(type='PackImageTextInputs')]))
test_dataloader = val_dataloader
val_evaluator = dict(type='RetrievalRecallMetric', topk=(1, 5, 10))
test_evaluator = val_evaluator

max_iters = 3000
warmup_iters = 100
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
val_cfg = dict(type='RetrievalValLoop')
test_cfg = dict(type='RetrievalTestLoop')
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
