# SOHO pre-training as the authors released it (researchmm/soho, configs/Pretrain/soho_res18_pre.py; the checkpoint
# soho_res18_fp16_40-9441cdd3.pth converts into this config with tools/model_converters/soho_to_mmvlg.py, no key
# missing or unexpected): ResNet-18 (torchvision weights) C5, stem + layer1 frozen, BatchNorm trained; the neck's
# 2x2 max-pool, 1x1 conv + BN to 768 (their SyncBN), a 2048-entry visual dictionary (moving average with
# momentum 0.4 and Laplace-smoothed counts, no ramp), its entries through a Linear and gated with the conv feature;
# a 3-layer BERT-base (bert-base-uncased's first 3 layers) over [CLS] caption [SEP] (16 tokens at most) + the visual
# tokens. Heads as the released model: the MLM decoder one bias-free Linear tied to the word embeddings on the fused
# tokens (no transform), MVM the cosine to the entries (mask probability 0.015 per pair), ITM a bias-free Linear;
# four texts per image with Binomial(4, 0.5) negatives, MLM and MVM on the negatives too; equal weights.
# Training details of the released code the paper does not describe, kept here (the paper configs do not): the
# dictionary update also counts the features at the padding of the batch's images (neck.update_padding) and counts
# each image once per (image, text) pair, as their neck runs on each of the four copies (update_per_pair); MVM
# draws one grid position per batch and masks the entry there in every pair drawn (mvm_cfg.choose_per='batch';
# a pair padded there masks nothing). Inference and checkpoint keys are the same either way.
# Data: COCO captions (train2014 and val2014) and Visual Genome; shorter side 600, longer at most 1000, padded to 32.
# 8 GPUs x 16 images (x 4 texts = 64 pairs), gradients accumulated over 2 iterations; their AdamwSGD: SGD for the
# backbone (lr 1e-4 x 100 = 1e-2, momentum 0.9, weight decay 1e-4), AdamW for the rest (lr 1e-4, eps 1e-6, weight
# decay 1e-2 on every parameter), gradient norm clipped at 10 (per optimizer here; theirs over all parameters at
# once); linear warm-up over 1000 iterations from 1/3, the learning rates divided by 10 at epochs 25 and 35 of 40.
# No frozen-backbone cold start (the code has none). They
# train with apex O1 mixed precision; this config runs in fp32, `tools/train.py --amp` (or
# --cfg-options optim_wrapper.type=AmpOptimWrapper optim_wrapper.dtype=float16) makes both optimizers
# AmpOptimWrapper with one shared loss scaler and one autocast around the forward. Weights by local path:
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/resnet18.pth
#                 model.language_model.name_or_path=/path/to/bert-base-uncased
# Data: X-VLM-style caption jsonl files ({"image": path, "caption": str}) under data/soho/, see
# mmvlg.datasets.CaptionDataset.
_base_ = ['../_base_/default_runtime.py']
num_gpus = 8
batch_size = 16  # images per GPU, each with 4 texts
max_epochs = 40
model = dict(
    type='SOHO',
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='mmdet.ResNet', depth=18, num_stages=4, out_indices=(3, ), frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch', with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=dict(
        type='SOHONeck', in_channels=512, fusion='gate', project_entries=True, pool=True,
        norm_cfg=dict(type='SyncBN'), layer_norm_eps=1e-5, update_padding=True,
        dictionary=dict(type='VisualDictionary', num_entries=2048, momentum=0.4, update='code')),
    language_model=dict(type='HFTextEncoder', name_or_path='bert-base-uncased', max_length=16,
                        model_kwargs=dict(num_hidden_layers=3)),
    mlm_head=dict(type='MLMHead', tie_word_embeddings=True, transform=False, bias=False, loss_weight=1.0,
                  masking=dict(rule='bernoulli', mask_prob=0.15, replace_prob=0.8, random_prob=0.1)),
    itm_head=dict(type='ITMHead', bias=False, loss_weight=1.0),
    mvm_cfg=dict(mask_prob=0.015, temperature=1.0, loss_weight=1.0, choose_per='batch'),
    itm_cfg=dict(texts_per_image=4, rule='binomial', neg_prob=0.5),
    mlm_mvm_on_negatives=True,
    update_per_pair=True)

data_root = 'data/soho/'
pair_files = ['pretrain/coco_train.jsonl', 'pretrain/coco_val.jsonl', 'pretrain/vg.jsonl']
pipeline = [dict(type='LoadImageFromFile'), dict(type='mmdet.Resize', scale=(1000, 600), keep_ratio=True),
            dict(type='PackImageTextInputs')]
train_dataloader = dict(
    batch_size=batch_size, num_workers=4, persistent_workers=True,
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
    backbone=dict(modules=['backbone'], type='OptimWrapper', accumulative_counts=2,
                  clip_grad=dict(max_norm=10.0, norm_type=2),
                  optimizer=dict(type='SGD', lr=1e-2, momentum=0.9, weight_decay=1e-4)),
    others=dict(modules=None, type='OptimWrapper', accumulative_counts=2, clip_grad=dict(max_norm=10.0, norm_type=2),
                optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-6, weight_decay=1e-2),
                paramwise_cfg=dict(bypass_duplicate=True)))
# the two optimizers under distributed training (MMEngine's DDP wrapper steps one optimizer wrapper only); by
# import path: the Runner looks the type up in MMEngine's root registry, which does not reach mmvlg's
model_wrapper_cfg = dict(type='mmvlg.engine.MultiOptimDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', by_epoch=True, milestones=[25, 35], gamma=0.1, begin=0, end=max_epochs)]
auto_scale_lr = dict(enable=False, base_batch_size=num_gpus * batch_size)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=2, max_keep_ckpts=3))
