# SOHO visual entailment fine-tuning on SNLI-VE as in the paper (section 4.2.4, Table 6: val 85.00, test 84.95): the
# R-101 pre-training (soho_r101_bert-base_32xb128-40e_coco-vg.py, loaded with load_from) with the dictionary
# skipped; one (image, hypothesis) pair through the single-stream transformer, "a fully-connected layer on the
# representation of the [CLS] token": Linear(768, 3) -> entailment / neutral / contradiction, cross entropy
# (SOHOPairClassifier, num_images=1). 6 epochs, batch 128 (8 GPUs x 16; the paper gives no GPU count), "the learning
# rate is initialized as 1e-4, and decay to 1e-5 after four epoch": one learning rate is named, so one AdamW (weight
# decay 1e-2, the pre-training's) for every parameter, divided by 10 at epoch 4. Images as in the pre-training
# (shorter side 600, longer at most 1000). Data: _base_/datasets/snli_ve.py. From the pre-training checkpoint:
#   --cfg-options load_from=/path/to/soho_r101_pretrain.pth
#                 model.language_model.name_or_path=/path/to/bert-base-uncased
_base_ = ['../_base_/models/soho_r101_bert-base.py', '../_base_/datasets/snli_ve.py', '../_base_/default_runtime.py']
num_gpus = 8
batch_size = 16
max_epochs = 6
model = dict(type='SOHOPairClassifier', num_images=1, num_classes=3, cls_head=dict(type='Linear'))
ve_pipeline = [dict(type='LoadImageFromFile'), dict(type='mmdet.Resize', scale=(1000, 600), keep_ratio=True),
               dict(type='PackImageTextInputs', meta_keys=_base_.ve_meta_keys)]
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=ve_pipeline))
val_dataloader = dict(dataset=dict(pipeline=ve_pipeline))
test_dataloader = dict(dataset=dict(pipeline=ve_pipeline))

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-2))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[4], gamma=0.1, begin=0, end=max_epochs)]
auto_scale_lr = dict(enable=False, base_batch_size=num_gpus * batch_size)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='ve/accuracy', rule='greater'))
custom_hooks = [
    dict(type='CheckpointKeysHook', allow_unexpected=_base_.soho_pretrain_unexpected, allow_missing=[r'^cls_head\.'])
]
