# SOHO NLVR2 fine-tuning as in the paper (section 4.2.3, Table 5: dev 76.37, test-P 77.32): the R-101 pre-training
# (soho_r101_bert-base_32xb128-40e_coco-vg.py, loaded with load_from) with the dictionary skipped; each statement
# paired with each of its two images through the single-stream transformer, the two fused [CLS] concatenated,
# [CLS_left; CLS_right] -> MLP (Linear(1536, 1536) - LN - GELU - Linear(1536, 2): the paper gives no more than "a
# classifier on the concatenation", as LXMERT / UNITER) -> true / false, cross entropy (SOHOPairClassifier). "The
# settings of the optimizer, epoch number, and learning rate are the same as VQA settings", the batch half of VQA's
# 256: 128 statements (8 GPUs x 16; the paper gives no GPU count), SGD (lr 1e-2, weight decay 5e-4) for the backbone
# and AdamW (lr 1e-4, weight decay 1e-2) for the rest as in the pre-training, 18 epochs, the learning rates divided
# by 10 at epochs 12 and 16. Images as in the pre-training (shorter side 600, longer at most 1000), no flip (the
# statements name left and right). Data: _base_/datasets/nlvr2.py. From the pre-training checkpoint:
#   --cfg-options load_from=/path/to/soho_r101_pretrain.pth
#                 model.language_model.name_or_path=/path/to/bert-base-uncased
_base_ = ['../_base_/models/soho_r101_bert-base.py', '../_base_/datasets/nlvr2.py',
          '../_base_/schedules/soho_finetune_18e.py', '../_base_/default_runtime.py']
num_gpus = 8
batch_size = 16  # statements per GPU (32 images)
width = 768
model = dict(type='SOHOPairClassifier', num_images=2, num_classes=2,
             cls_head=dict(type='MLPBlock', hidden_dims=2 * width))
pair_pipeline = [
    dict(type='ApplyToImagePair', transforms=[dict(type='LoadImageFromFile'),
                                              dict(type='mmdet.Resize', scale=(1000, 600), keep_ratio=True)]),
    dict(type='PackNLVR2Inputs'),
]
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=pair_pipeline))
val_dataloader = dict(dataset=dict(pipeline=pair_pipeline))
test_dataloader = dict(dataset=dict(pipeline=pair_pipeline))

auto_scale_lr = dict(enable=False, base_batch_size=num_gpus * batch_size)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='nlvr2/accuracy', rule='greater'))
custom_hooks = [
    dict(type='CheckpointKeysHook', allow_unexpected=_base_.soho_pretrain_unexpected, allow_missing=[r'^cls_head\.'])
]
