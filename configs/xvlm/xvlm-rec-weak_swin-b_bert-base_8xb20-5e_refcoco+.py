# X-VLM-base weakly supervised REC on RefCOCO+ as released (the authors' Grounding.py with configs/Grounding.yaml):
# ITC and ITM fine-tuning on (image, expression) pairs without boxes (the expressions of one COCO image are
# positives of each other: original_id), then Grad-CAM of the ITM match logit on the cross-attention of BERT layer 9
# (block_num: 9, the 4th cross layer; the paper says the 3rd: gradcam_layer=8) scores each detection of the image by
# its in-box sum / sqrt(area) (bicubic upsampling of the 12x12 map to the original image) and the best one is the
# answer. Swin-B at 384 px, window 12, 40 text tokens, ITC 256-d with temperature 0.07; batch 20 per GPU on 8 GPUs,
# 5 epochs, AdamW lr 2e-5 for every parameter (no init_params in the authors' model), weight decay 0.01, linear
# warm-up over the first 10% then linear decay to 0. Training images: the 384x384 bicubic resize and a flip that
# swaps left/right in the expression (the authors flip without swapping; their RandomAugment is not used).
# Proposals: the authors' MAttNet-style detections data/finetune/refcoco+/dets.json ({COCO image id: [[x, y, w, h,
# ...], ...]}, LoadProposals), or an MMDetection detector's predictions on the same images (the .pkl of mmdet's
# tools/test.py --out): --cfg-options with the LoadProposals step's proposal_file=/path/to/results.pkl.
# Metric: Prec@0.5 of the top proposal (RefExpMetric; val, testA, testB).
# The pre-trained checkpoint: --cfg-options load_from=/path/to/xvlm_4m_mmvlg.pth
#     model.language_model.name_or_path=/path/to/bert-base-uncased
_base_ = ['../_base_/models/xvlm_swin-b_bert-base.py', '../_base_/datasets/refcoco+.py',
          '../_base_/default_runtime.py']

img_scale = (384, 384)
batch_size = 20
num_gpus = 8
max_epochs = 5
lr = 2e-5
proposal_file = 'data/finetune/refcoco+/dets.json'

model = dict(
    type='XVLMWeakGrounding',
    vision_encoder=dict(img_size=384, window_size=12, pretrained=None),
    language_model=dict(max_length=40),
    mlm_head=None,
    bbox_head=None,
    gradcam_layer=9,
    proposal_alpha=0.5,
    image_id_key='original_id')

resize = dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False, interpolation='bicubic')
train_pipeline = [dict(type='LoadImageFromFile'), resize, dict(type='GroundingRandomFlip', prob=0.5),
                  dict(type='PackGroundingInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    resize,
    dict(type='LoadGroundingAnnotations'),
    dict(type='LoadProposals', proposal_file=proposal_file, box_format='xywh', id_key='original_id'),
    dict(type='PackGroundingInputs'),
]
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
# num_warmup_steps 0.1 of the 5 epochs: half an epoch
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=0.5, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True, begin=0.5, end=max_epochs,
         convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch_size * num_gpus)
custom_hooks = [dict(type='CheckpointKeysHook', allow_unexpected=[r'^(mlm_head|bbox_head)\.'])]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1,
                                     save_best='refexp/Prec@1', rule='greater'))
