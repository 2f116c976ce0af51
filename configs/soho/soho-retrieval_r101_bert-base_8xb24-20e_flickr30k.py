# SOHO image-text retrieval fine-tuning on Flickr30k (Karpathy split, 1k test images; the paper's section 4.2.1,
# Table 3): the COCO config's model, ITM over every pair of a mini-batch of 24, optimizer and schedule
# (soho-retrieval_r101_bert-base_8xb24-20e_coco.py; the paper gives one setting for both data sets) on the Flickr30k
# files of _base_/datasets/flickr30k_retrieval.py. From the R-101 pre-training checkpoint:
#   --cfg-options load_from=/path/to/soho_r101_pretrain.pth
#                 model.language_model.name_or_path=/path/to/bert-base-uncased
_base_ = [
    '../_base_/models/soho_r101_bert-base.py', '../_base_/datasets/flickr30k_retrieval.py',
    '../_base_/schedules/soho_retrieval_20e.py', '../_base_/default_runtime.py'
]
num_gpus = 8
batch_size = 24
model = dict(
    type='SOHO',
    mlm_head=None,
    itm_head=dict(type='ITMHead', loss_weight=1.0),
    itm_cfg=dict(rule='all'),
    losses=('itm', ),
    use_dictionary=False,
    retrieval_cfg=dict(batch_size=256))
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=_base_.soho_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_base_.soho_pipeline))
test_dataloader = dict(dataset=dict(pipeline=_base_.soho_pipeline))
auto_scale_lr = dict(enable=False, base_batch_size=num_gpus * batch_size)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='retrieval/R_mean',
                    rule='greater'))
custom_hooks = [
    dict(type='CheckpointKeysHook', allow_unexpected=[r'^mlm_head\.', r'^neck\.(dictionary|entry_proj|gate)\.'])
]
