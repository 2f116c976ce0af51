# X-VLM-base NLVR2 fine-tuning as released (the authors' configs/NLVR.yaml, NLVR.py, models/model_nlvr.py): Swin-B
# at 384 px, window 12 (the pre-trained 7x7 relative-position tables are resized on load), BERT-base with each of the
# 6 cross layers duplicated, one copy per image (layers 6-17, the authors' numbering; the copies of a layer share
# their cross-attention keys and values), the MLP classifier (768 -> 1536 -> 2) on the fused [CLS]; batch 10 per GPU
# on 8 GPUs, 10 epochs, AdamW lr 3e-5 (2x for the classifier alone, lr_mult 2 of its init_params), weight decay
# 0.01, linear warm-up over the first 10% of the iterations then linear decay to 0; accuracy on dev and test-P.
# Augmentation: the authors' RandomResizedCrop(384, scale=(0.5, 1)) + horizontal flip per image (their RandAugment
# is left out, as in the other mmvlg X-VLM fine-tuning configs).
# Data by local path, X-VLM's files (data/finetune/nlvr_{train,dev,test}.json: [{"images": [left, right],
# "sentence", "label"}]) or the official JSON lines (train.json, dev.json, test1.json), images under
# data/images/nlvr2/. Initialization, as the authors (run.py --task nlvr): first the text-assignment step
# (xvlm-nlvr2-pretrain_swin-b_bert-base_8xb32-1e_4m.py) from the pre-trained checkpoint, then this config with
#   --cfg-options load_from=work_dirs/xvlm-nlvr2-pretrain_swin-b_bert-base_8xb32-1e_4m/iter_<last>.pth
# or straight from a (single-image) pre-trained checkpoint (its cross layers are copied to both images on load):
#   --cfg-options load_from=/path/to/xvlm_4m_mmvlg.pth (tools/model_converters/xvlm_to_mmvlg.py)
# and model.language_model.name_or_path=/path/to/bert-base-uncased (the tokenizer and the BERT layout).
_base_ = ['../_base_/models/xvlm_swin-b_bert-base.py', '../_base_/datasets/nlvr2.py',
          '../_base_/default_runtime.py']

img_scale = (384, 384)
batch_size = 10
num_gpus = 8
max_epochs = 10
lr = 3e-5
width = 768

model = dict(
    type='XVLMNLVR',
    vision_encoder=dict(img_size=384, window_size=12, pretrained=None),
    language_model=dict(max_length=40, cross_attention=dict(start=6, num_contexts=2)),
    itc_head=None, itm_head=None, mlm_head=None, bbox_head=None,
    cls_head=dict(type='MLPBlock', hidden_dims=2 * width),
    num_classes=2)

train_pipeline = [
    dict(type='ApplyToImagePair', transforms=[
        dict(type='LoadImageFromFile'),
        dict(type='mmdet.RandomCrop', crop_type='relative_range', crop_size=(0.5, 0.5)),
        dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False),
        dict(type='mmdet.RandomFlip', prob=0.5),
    ]),
    dict(type='PackNLVR2Inputs'),
]
test_pipeline = [
    dict(type='ApplyToImagePair', transforms=[dict(type='LoadImageFromFile'),
                                              dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False)]),
    dict(type='PackNLVR2Inputs'),
]
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=test_pipeline))

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
# the authors' create_optimizer: lr_mult 2 for the classifier (init_params) only, no decay on biases and norms
optim_wrapper = dict(
    optimizer=dict(lr=lr, weight_decay=0.01), clip_grad=None,
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0, bypass_duplicate=True,
                       custom_keys={'cls_head': dict(lr_mult=2.0)}))
# num_warmup_steps: 0.1 of the iterations = 1 of the 10 epochs
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=max_epochs // 10,
         convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True, begin=max_epochs // 10,
         end=max_epochs, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch_size * num_gpus)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='nlvr2/accuracy',
                    rule='greater'))
