# SOHO VQA v2 fine-tuning as the authors released it (researchmm/soho, configs/VQA/soho_res18_vqa.py; a checkpoint of
# their SOHOSingleStreamVQA converts into this config with tools/model_converters/soho_to_mmvlg.py): the release
# pre-training's ResNet-18 and 3-layer BERT-base (soho-release_r18_bert-base-3l_8xb16-40e_coco-vg.py, loaded with
# load_from), the neck without the dictionary (pool, 1x1 conv + BN (their SyncBN), sine positions, LayerNorm: their
# SimpleVDforVQA), [CLS] -> Linear(768, 3072) - ReLU - Dropout(0.5) - Linear(3072, 3129 answers), soft-score BCE.
# Questions of 16 tokens at most; training images with the shorter side drawn in [400, 800] (longer at most 1333),
# test images 600 / 1000; padded to 32. 8 GPUs x 32 questions, gradients accumulated over 2 iterations; their
# AdamwSGD as in the pre-training (SGD lr 1e-2 for the backbone, AdamW lr 1e-4 for the rest) with the gradient norm
# clipped at 4 (per optimizer here); linear warm-up over 1000 iterations from 1/3, the learning rates divided by 10
# at epochs 12 and 16 of 20; they train on train2014 + val2014 and test on test2015 (here val2014 validates; add it
# to the training ConcatDataset and set the test split for test-dev). mmvlg trains in fp32 (their O0).
# From the converted release pre-training checkpoint (its dictionary, gate and heads are not in this model):
#   --cfg-options load_from=/path/to/soho_r18_release_mmvlg.pth
#                 model.language_model.name_or_path=/path/to/bert-base-uncased
# Data by local path in the VQA v2 release's format (VQAv2Dataset): questions/annotations JSON under data/vqav2/,
# COCO images under data/coco/; the answer list (3129 answers): tools/dataset_converters/vqav2_answer_list.py.
_base_ = ['../_base_/datasets/vqav2.py', '../_base_/default_runtime.py']
num_gpus = 8
batch_size = 32
max_epochs = 20
model = dict(
    type='SOHOVQA',
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='mmdet.ResNet', depth=18, num_stages=4, out_indices=(3, ), frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch', init_cfg=None),
    neck=dict(type='SOHONeck', in_channels=512, dictionary=None, pool=True, norm_cfg=dict(type='SyncBN'),
              layer_norm_eps=1e-5),
    language_model=dict(type='HFTextEncoder', name_or_path='bert-base-uncased', max_length=16,
                        model_kwargs=dict(num_hidden_layers=3)),
    vqa_head=dict(type='SOHOVQAHead', answers=_base_.answer_list, hidden_dims=4 * 768, dropout=0.5))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.RandomResize', scale=[(1333, 400), (1333, 800)], keep_ratio=True),
    dict(type='PackImageTextInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='PackImageTextInputs'),
]
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(
    constructor='ModuleOptimWrapperConstructor',
    backbone=dict(modules=['backbone'], type='OptimWrapper', accumulative_counts=2,
                  clip_grad=dict(max_norm=4.0, norm_type=2),
                  optimizer=dict(type='SGD', lr=1e-2, momentum=0.9, weight_decay=1e-4)),
    others=dict(modules=None, type='OptimWrapper', accumulative_counts=2, clip_grad=dict(max_norm=4.0, norm_type=2),
                optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-6, weight_decay=1e-2)))
# the two optimizers under distributed training (MMEngine's DDP wrapper steps one optimizer wrapper only); by
# import path: the Runner looks the type up in MMEngine's root registry, which does not reach mmvlg's
model_wrapper_cfg = dict(type='mmvlg.engine.MultiOptimDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', by_epoch=True, milestones=[12, 16], gamma=0.1, begin=0, end=max_epochs)]
auto_scale_lr = dict(enable=False, base_batch_size=num_gpus * batch_size)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='vqa/accuracy', rule='greater'))
# the release pre-training checkpoint (load_from): its dictionary, gate, entry projection and heads are not in this
# model, the VQA head is new
custom_hooks = [
    dict(type='CheckpointKeysHook',
         allow_unexpected=[r'^(mlm_head|itm_head)\.', r'^neck\.(dictionary|entry_proj|gate)\.'],
         allow_missing=[r'^vqa_head\.'])
]
