# X-VLM-base pre-training on 4M images as released (the authors' configs/Pretrain_XVLM_base_4m.yaml): Swin-B at
# 224 px and BERT-base (configs/_base_/models/xvlm_swin-b_bert-base.py), image-text pairs of COCO, Visual Genome,
# SBU and CC3M (5,114,489 pairs) in batches of 128 per GPU on 8 GPUs (1024), and the region-text data (COCO and VG
# objects, VG regions) in a separate region step taken with probability 0.5 per iteration (iter_perc; 48 images of
# at most 5 regions each, elements more than half inside the crop kept): RegionStepTrainLoop(mode='step'), at most
# two optimizer steps per iteration, one scheduler step. 41 epochs of ceil(5,114,489 / 1024) = 4,995 iterations =
# 204,795 iterations; AdamW lr 1e-4 (2x for the fresh parts), weight decay 0.01, linear warm-up over 2,500
# iterations then linear decay to 0, gradient clipping at 1.0; 40 text tokens, MLM: 25% of the tokens, at most 8.
# The paper's way instead (half of the images of each batch boxed, one step per iteration): train_cfg.mode='merge'
# with both loaders at half the batch (see xvlm_vit-b-16_bert-base_32xb96-83k_4m.py).
#
# Data by local path, one file per source (concatenate the authors' shards): image-text pairs as JSON lines
# {"image": "relative/path.jpg", "caption": "..."} (CaptionDataset, ann_format='jsonl'; a list of captions gives
# one pair per caption), region-text data in X-VLM's format {"image", "caption"?, "elems": [{"caption", "bb",
# "attributes"?}]} (RegionTextDataset). mmvlg reads image files, not the base64 strings of the authors' shards.
# Weights by local path: --cfg-options model.vision_encoder.pretrained=/path/to/swin_base_patch4_window7_224_22k.pth
#     model.language_model.name_or_path=/path/to/bert-base-uncased
_base_ = ['../_base_/models/xvlm_swin-b_bert-base.py', '../_base_/default_runtime.py']

data_root = 'data/xvlm/'
image_root = 'images/'
img_scale = (224, 224)
pair_files = ['pretrain/coco.jsonl', 'pretrain/vg.jsonl', 'pretrain/sbu.jsonl', 'pretrain/cc3m.jsonl']
region_files = ['pretrain/coco_objs.jsonl', 'pretrain/vg_objs.jsonl', 'pretrain/vg_regions.jsonl']
num_pairs = 5114489  # train_dataset_size
batch_size = 128  # images.batch_size (per GPU)
num_gpus = 8
region_batch_size = 48  # regions.max_images (per GPU)
max_regions = 5
epochs = 41
iters_per_epoch = -(-num_pairs // (batch_size * num_gpus))  # 4,995
max_iters = epochs * iters_per_epoch  # 204,795
warmup_iters = 2500

model = dict(
    language_model=dict(max_length=40),  # max_tokens (the paper: 25)
    mlm_head=dict(masking=dict(mask_prob=0.25, max_masks=8)))

resize = dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False)
pair_pipeline = [dict(type='LoadImageFromFile'), resize, dict(type='PackRegionTextInputs')]
region_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RegionTextSampler', max_regions=max_regions, min_inside=0.5),
    resize,
    dict(type='PackRegionTextInputs'),
]
train_dataloader = dict(
    batch_size=batch_size, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='CaptionDataset', data_root=data_root, ann_file=f, ann_format='jsonl',
             data_prefix=dict(img=image_root), skip_invalid=True, check_images=False, pipeline=pair_pipeline)
        for f in pair_files]))
region_dataloader = dict(
    batch_size=region_batch_size, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='RegionTextDataset', data_root=data_root, ann_file=f, data_prefix=dict(img=image_root),
             skip_invalid=True, check_images=False, pipeline=region_pipeline)
        for f in region_files]))
train_cfg = dict(type='RegionStepTrainLoop', mode='step', region_prob=0.5, region_dataloader=region_dataloader,
                 max_iters=max_iters, val_interval=max_iters + 1)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None

optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.01), clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch_size * num_gpus)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=50000, max_keep_ckpts=5))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
