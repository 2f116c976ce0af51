# X-VLM-base pre-training on 16M images as released (the authors' configs/Pretrain_XVLM_base_16m.yaml): the 4M
# setting (xvlm_swin-b_bert-base_8xb128-205k_4m.py) plus CC12M pairs (16,219,845 pairs) and Objects365,
# OpenImages and RefCOCO (its val/test images removed) as region-text data; batches of 128 per GPU on 24 GPUs
# (3072), the region step with probability 0.5 (48 images of at most 5 regions); 38 epochs of
# ceil(16,219,845 / 3072) = 5,280 iterations = 200,640 iterations; 30 text tokens, at most 6 MLM targets; the rest
# as the 4M config.
_base_ = ['./xvlm_swin-b_bert-base_8xb128-205k_4m.py']

pair_files = ['pretrain/coco.jsonl', 'pretrain/vg.jsonl', 'pretrain/sbu.jsonl', 'pretrain/cc3m.jsonl',
              'pretrain/cc12m.jsonl']
region_files = ['pretrain/coco_objs.jsonl', 'pretrain/vg_objs.jsonl', 'pretrain/vg_regions.jsonl',
                'pretrain/openimages.jsonl', 'pretrain/obj365.jsonl', 'pretrain/refcoco_rm_leak.jsonl']
num_pairs = 16219845
batch_size = 128
num_gpus = 24
region_batch_size = 48
epochs = 38
iters_per_epoch = -(-num_pairs // (batch_size * num_gpus))  # 5,280
max_iters = epochs * iters_per_epoch  # 200,640
warmup_iters = 2500
data_root = 'data/xvlm/'
image_root = 'images/'

model = dict(
    language_model=dict(max_length=30),
    mlm_head=dict(masking=dict(mask_prob=0.25, max_masks=6)))

_pair_pipeline = {{_base_.pair_pipeline}}
_region_pipeline = {{_base_.region_pipeline}}
train_dataloader = dict(
    dataset=dict(_delete_=True, type='ConcatDataset', datasets=[
        dict(type='CaptionDataset', data_root=data_root, ann_file=f, ann_format='jsonl',
             data_prefix=dict(img=image_root), skip_invalid=True, check_images=False, pipeline=_pair_pipeline)
        for f in pair_files]))
region_dataloader = dict(
    batch_size=region_batch_size, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='RegionTextDataset', data_root=data_root, ann_file=f, data_prefix=dict(img=image_root),
             skip_invalid=True, check_images=False, pipeline=_region_pipeline)
        for f in region_files]))
train_cfg = dict(region_dataloader=region_dataloader, max_iters=max_iters, val_interval=max_iters + 1)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch_size * num_gpus)
