# X-VLM-base box-only warm-up before the supervised REC fine-tuning, as released (the authors'
# Grounding_bbox_pretrain.py with configs/Grounding_bbox_pretrain_O1.yaml): from the pre-trained checkpoint, the box
# head alone on (full image, region text) for the region-text data of the pre-training (COCO objects, VG objects,
# VG regions), L1 + GIoU, whole-image captions left out (calc_image_bbox_loss: False); Swin-B at 224 px, 40 text
# tokens; per GPU 24 images of at most 5 regions each (elements more than half inside the sampled crop kept) on 8
# GPUs, 2 epochs of the authors' train_dataset_size 318,547, AdamW lr 3e-5 (no lr_mult: no fresh part), weight
# decay 0.01, gradient clipping at norm 1, linear warm-up over the first 10% then linear decay to 0.
# Then fine-tune with xvlm-rec_swin-b_bert-base_8xb20-10e_refcoco+.py (load_from=this run's last checkpoint).
# Data by local path in X-VLM's region format (RegionTextDataset: {"image", "caption"?, "elems": [{"caption", "bb",
# "attributes"?}]}), as the pre-training configs (xvlm_swin-b_bert-base_8xb128-205k_4m.py); the pre-trained
# checkpoint: --cfg-options load_from=/path/to/xvlm_4m_mmvlg.pth
#     model.language_model.name_or_path=/path/to/bert-base-uncased
_base_ = ['../_base_/models/xvlm_swin-b_bert-base.py', '../_base_/default_runtime.py']

data_root = 'data/xvlm/'
image_root = 'images/'
img_scale = (224, 224)
region_files = ['pretrain/coco_objs.jsonl', 'pretrain/vg_objs.jsonl', 'pretrain/vg_regions.jsonl']
num_images = 318547  # train_dataset_size
batch_size = 24  # regions.batch_size (per GPU)
num_gpus = 8
max_regions = 5
epochs = 2
iters_per_epoch = -(-num_images // (batch_size * num_gpus))  # 1,660
max_iters = epochs * iters_per_epoch  # 3,320
warmup_iters = max_iters // 10

model = dict(
    type='XVLMGrounding',
    language_model=dict(max_length=40),
    itc_head=None,
    itm_head=None,
    mlm_head=None,
    bbox_on_whole_image=False)

region_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RegionTextSampler', max_regions=max_regions, min_inside=0.5),
    dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackRegionTextInputs'),
]
train_dataloader = dict(
    batch_size=batch_size, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='RegionTextDataset', data_root=data_root, ann_file=f, data_prefix=dict(img=image_root),
             skip_invalid=True, check_images=False, pipeline=region_pipeline)
        for f in region_files]))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters + 1)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None

optim_wrapper = dict(
    optimizer=dict(lr=3e-5, weight_decay=0.01),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch_size * num_gpus)
custom_hooks = [dict(type='CheckpointKeysHook', allow_unexpected=[r'^(itc_head|itm_head|mlm_head)\.'])]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=iters_per_epoch,
                                     max_keep_ckpts=1))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
