# SOHO pre-training as in the paper (arXiv:2104.03135, sections 3-4.1): ResNet-101 (ImageNet) C5, the neck's 2x2
# max-pool and 1x1 conv to 768, a 2048-entry visual dictionary, 12-layer BERT-base over [CLS] caption [SEP] + the
# visual tokens; MLM + MVM + ITM with equal weights, each image with four texts (two positive, two negative: the
# paper's "exactly 2 of 4"; MLM and MVM on the positive pairs only, as the paper); COCO (train + restval, Karpathy)
# and Visual Genome captions; shorter side 600, longer side at most 1000; a batch of 4096 image-text pairs on 32 GPUs
# (128 each); SGD (lr 1e-2, weight decay 5e-4) for the backbone and AdamW (lr 1e-4, weight decay 1e-2) for the rest,
# 40 epochs with the learning rates divided by 10 at epochs 25 and 35; the backbone frozen for the first 10 epochs
# (section 3.2). The paper trains with mixed precision; this config runs in fp32, `tools/train.py --amp` (or
# --cfg-options optim_wrapper.type=AmpOptimWrapper optim_wrapper.dtype=float16) makes both optimizers
# AmpOptimWrapper with one shared loss scaler and one autocast around the forward. Weights by local path:
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/resnet101.pth
#                 model.language_model.name_or_path=/path/to/bert-base-uncased
# Data: X-VLM-style caption jsonl files ({"image": path, "caption": str}) under data/soho/, see
# mmvlg.datasets.CaptionDataset.
_base_ = ['../_base_/default_runtime.py']
num_gpus = 32
batch_size = 128  # image-text pairs per GPU (32 images x 4 texts)
max_epochs = 40
model = dict(
    type='SOHO',
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='mmdet.ResNet', depth=101, out_indices=(3, ), frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True, style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')),
    neck=dict(
        type='SOHONeck', in_channels=2048, fusion='gate', project_entries=True, pool=True,
        dictionary=dict(type='VisualDictionary', num_entries=2048, momentum=0.4, update='code')),
    language_model=dict(type='HFTextEncoder', name_or_path='bert-base-uncased', max_length=40),
    mlm_head=dict(type='MLMHead', tie_word_embeddings=True, loss_weight=1.0),
    itm_head=dict(type='ITMHead', loss_weight=1.0),
    mvm_cfg=dict(mask_prob=0.015, temperature=1.0, loss_weight=1.0),
    itm_cfg=dict(texts_per_image=4, rule='exact'),
    mlm_mvm_on_negatives=False)

data_root = 'data/soho/'
pair_files = ['pretrain/coco.jsonl', 'pretrain/vg.jsonl']
pipeline = [dict(type='LoadImageFromFile'), dict(type='mmdet.Resize', scale=(1000, 600), keep_ratio=True),
            dict(type='PackImageTextInputs')]
train_dataloader = dict(
    batch_size=batch_size, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='CaptionDataset', data_root=data_root, ann_file=f, ann_format='jsonl',
             data_prefix=dict(img='images/'), skip_invalid=True, check_images=False, pipeline=pipeline)
        for f in pair_files]))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
optim_wrapper = dict(
    constructor='ModuleOptimWrapperConstructor',
    backbone=dict(modules=['backbone'], type='OptimWrapper',
                  optimizer=dict(type='SGD', lr=1e-2, momentum=0.9, weight_decay=5e-4)),
    others=dict(modules=None, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-2),
                paramwise_cfg=dict(bypass_duplicate=True)))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[25, 35], gamma=0.1, begin=0, end=max_epochs)]
custom_hooks = [dict(type='FreezeModulesHook', modules=['backbone'], end=10)]
# the two optimizers under distributed training (MMEngine's DDP wrapper steps one optimizer wrapper only); by
# import path: the Runner looks the type up in MMEngine's root registry, which does not reach mmvlg's; unused
# parameters found: the backbone has no gradient while FreezeModulesHook holds it
model_wrapper_cfg = dict(type='mmvlg.engine.MultiOptimDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=True)
auto_scale_lr = dict(enable=False, base_batch_size=num_gpus * batch_size)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
