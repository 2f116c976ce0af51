# X-VLM-base pre-training on 4M images as in the paper (arXiv:2111.08276, section 4.2): ViT-B/16 at 256 px from
# DeiT-B with mixed attention in the last 4 blocks (configs/_base_/models/xvlm_vit-b-16_bert-base.py), a batch of
# 3072 on 32 GPUs (96 per GPU) of which half of the images have boxes: each iteration merges 48 image-text pairs
# and 48 region-text images per GPU into one batch and one optimizer step (RegionStepTrainLoop(mode='merge')); 25
# text tokens; MLM with BERT's Bernoulli rule (25%, 80/10/10); the box loss also on whole-image boxes (footnote 2);
# AdamW lr 1e-4, weight decay 0.02, warm-up from 1e-5 to 1e-4 over the first fifth of the iterations, then cosine
# decay to 1e-5. "50 epochs": the paper does not say of what; here 50 passes of the 4M setting's 5,114,489 pairs
# at 3072 per iteration (ceil = 1,665 iterations per epoch): 83,250 iterations.
# Weights by local path: --cfg-options model.vision_encoder.pretrained=/path/to/deit_base_patch16_224-b5f2ef4d.pth
#     model.language_model.name_or_path=/path/to/bert-base-uncased
_base_ = ['./xvlm_swin-b_bert-base_8xb128-205k_4m.py']

img_scale = (256, 256)
batch_size = 48  # image-text pairs per GPU; as many region-text images
region_batch_size = 48
num_gpus = 32
epochs = 50
iters_per_epoch = -(-5114489 // ((batch_size + region_batch_size) * num_gpus))  # 1,665
max_iters = epochs * iters_per_epoch  # 83,250
warmup_iters = max_iters // 5
data_root = 'data/xvlm/'
image_root = 'images/'
pair_files = ['pretrain/coco.jsonl', 'pretrain/vg.jsonl', 'pretrain/sbu.jsonl', 'pretrain/cc3m.jsonl']
region_files = ['pretrain/coco_objs.jsonl', 'pretrain/vg_objs.jsonl', 'pretrain/vg_regions.jsonl']

model = dict(
    # the image encoder of configs/_base_/models/xvlm_vit-b-16_bert-base.py (one base per config: that file and the
    # 4M config share the model's base)
    vision_encoder=dict(_delete_=True, type='XVLMViT', img_size=256, patch_size=16, embed_dims=768, depth=12,
                        num_heads=12, local_attn_depth=4, drop_path_rate=0.1, pretrained=None),
    language_model=dict(max_length=25),
    mlm_head=dict(masking=dict(_delete_=True, rule='bernoulli', mask_prob=0.25, replace_prob=0.8,
                               random_prob=0.1)),
    bbox_on_whole_image=True)

resize = dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False)
pair_pipeline = [dict(type='LoadImageFromFile'), resize, dict(type='PackRegionTextInputs')]
region_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RegionTextSampler', max_regions=5, min_inside=0.5),
    resize,
    dict(type='PackRegionTextInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    dataset=dict(_delete_=True, type='ConcatDataset', datasets=[
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
train_cfg = dict(mode='merge', region_dataloader=region_dataloader, max_iters=max_iters, val_interval=max_iters + 1)
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.02))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=False, begin=warmup_iters, end=max_iters),
]
auto_scale_lr = dict(enable=False, base_batch_size=(batch_size + region_batch_size) * num_gpus)
