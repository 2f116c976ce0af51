# X-VLM-base supervised referring-expression comprehension on RefCOCO+ as released (the authors' Grounding_bbox.py
# with configs/Grounding_bbox.yaml): the box head (MLP, sigmoid cx, cy, w, h) on the cross encoder's [CLS] of
# (image, expression), L1 + GIoU (weights 1), no ITC/ITM/MLM. Swin-B at 384 px, window 12 (the 7x7 relative-position
# tables of a 224-px checkpoint are resized on load), 40 text tokens; batch 20 per GPU on 8 GPUs, 10 epochs, AdamW
# lr 3e-5 for every parameter (the authors' grounding model lists no init_params, so lr_mult 2 applies to none),
# weight decay 0.01 (none on biases and norms), no gradient clipping, linear warm-up over the first 10% of the
# iterations then linear decay to 0. Metric: Prec@0.5 of the one box (RefExpMetric; val, testA, testB).
# Training images: a random crop that keeps the referred box (RandomCropKeepBoxes; the authors draw each crop side
# uniformly between the box and the image border), a flip that swaps left/right in the expression (the authors
# skip flipping such expressions: careful_hflip), a 384x384 bicubic resize (no aspect ratio kept, no padding); the
# authors' RandomAugment (brightness, sharpness, ...) is not used. Test images: the 384x384 bicubic resize.
# Two stages, as released: first the box-only warm-up (xvlm-rec-warmup_swin-b_bert-base_8xb24-2e_coco-vg-regions.py,
# the authors' Grounding_bbox_pretrain.py), then this fine-tuning from its checkpoint:
#   --cfg-options load_from=work_dirs/<warm-up run>/iter_3320.pth
#       model.language_model.name_or_path=/path/to/bert-base-uncased
# (or from a pre-trained / converted X-VLM checkpoint, tools/model_converters/xvlm_to_mmvlg.py, without the warm-up).
# Data by local path in MDETR's format (configs/_base_/datasets/refcoco+.py): data/coco/train2014/*.jpg,
# data/mdetr_annotations/finetune_refcoco+_{train,val,testA,testB}.json.
_base_ = ['../_base_/models/xvlm_swin-b_bert-base.py', '../_base_/datasets/refcoco+.py',
          '../_base_/default_runtime.py']

img_scale = (384, 384)
batch_size = 20
num_gpus = 8
max_epochs = 10
lr = 3e-5

model = dict(
    type='XVLMGrounding',
    vision_encoder=dict(img_size=384, window_size=12, pretrained=None),
    language_model=dict(max_length=40),
    itc_head=None,
    itm_head=None,
    mlm_head=None)

resize = dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False, interpolation='bicubic')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(type='GroundingRandomFlip', prob=0.5),
    dict(type='RandomCropKeepBoxes', min_ratio=0.5, prob=1.0),
    resize,
    dict(type='PackGroundingInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), resize, dict(type='LoadGroundingAnnotations'),
                 dict(type='PackGroundingInputs')]
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(batch_size=batch_size, dataset=dict(datasets=[
    dict(d, pipeline=test_pipeline) for d in _base_.test_dataloader.dataset.datasets]))
val_evaluator = dict(type='RefExpMetric', topk=(1, ), iou_thr=0.5)
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    optimizer=dict(lr=lr, weight_decay=0.01),
    clip_grad=None,
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0))
# num_warmup_steps: 0.1 of the iterations = 1 of the 10 epochs
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=max_epochs // 10,
         convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True, begin=max_epochs // 10,
         end=max_epochs, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch_size * num_gpus)
# the pre-trained (or warm-up) checkpoint's ITC/ITM/MLM heads have no place here
custom_hooks = [dict(type='CheckpointKeysHook', allow_unexpected=[r'^(itc_head|itm_head|mlm_head)\.'])]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1,
                                     save_best='refexp/Prec@1', rule='greater'))
