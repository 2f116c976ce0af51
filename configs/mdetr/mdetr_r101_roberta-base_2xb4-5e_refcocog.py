# MDETR ResNet-101 on refcocog: the architecture of the authors' released checkpoints (ashkamath/mdetr),
# MDETR's test-time resize (shorter side 800, longer side at most 1333) and RefCOCO fine-tuning schedule.
# Fine-tuned checkpoint (the authors report Prec@1 val 81.64, test 80.89):
#   https://zenodo.org/record/4721981/files/refcocog_resnet101_checkpoint.pth
# Pre-trained checkpoint (start of the fine-tuning, load_from): https://zenodo.org/record/4721981/files/pretrained_resnet101_checkpoint.pth
#   (pre-trained only, the authors report RefCOCO / RefCOCO+ / RefCOCOg val Prec@1 72.1 / 58.0 / 55.7).
# Convert either with tools/model_converters/mdetr_to_mmvlg.py --source mdetr --use-ema --config THIS.
_base_ = [
    '../_base_/models/mdetr_r101_roberta-base.py', '../_base_/datasets/refcocog.py',
    '../_base_/schedules/mdetr_finetune_5e.py', '../_base_/default_runtime.py'
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(type='GroundingRandomFlip', prob=0.5),
    dict(type='RandomCropKeepBoxes', min_ratio=0.6, prob=0.5),
    dict(type='mmdet.RandomChoiceResize', scales=[(1333, s) for s in range(480, 801, 32)], keep_ratio=True),
    dict(type='PackGroundingInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadGroundingAnnotations'),
    dict(type='PackGroundingInputs'),
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=4,
    dataset=dict(datasets=[dict(d, pipeline=test_pipeline) for d in _base_.test_dataloader.dataset.datasets]))
default_hooks = dict(checkpoint=dict(save_best='refexp/Prec@1', rule='greater'))
# MDETR trains with an EMA of the weights (decay 0.9998) and evaluates the EMA model.
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.0002, update_buffers=True, priority=49),
]
