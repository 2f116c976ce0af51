# X-VLM-base image-text retrieval fine-tuning on COCO (Karpathy split) as released (the authors'
# configs/Retrieval_coco.yaml): the pre-trained model with ITC (several positives per image: the captions of one
# img_id are targets of each other) and ITM (hard negatives from the ITC similarities); no MLM, no box head.
# Swin-B at 384 px, window 12 (the pre-trained 7x7 relative-position tables are resized on load), 40 text tokens;
# batch 20 per GPU on 8 GPUs, 10 epochs, AdamW lr 3e-5 (2x for the cross-attention and the heads), weight decay
# 0.01, linear warm-up over the first 10% of the iterations then linear decay to 0. Retrieval (Recall@1/5/10 both
# ways, RetrievalValLoop): ITC similarities of every image and caption, the top k=256 of each query re-scored and
# ranked by the ITM logit.
# Data by local path, the authors' Karpathy files (data/finetune/coco_{train,val,test}.json: JSON lists of
# {"image", "caption", "image_id"} for training, {"image", "caption": [5 captions]} for val/test; CaptionDataset,
# ann_format='list'), images under data/images/coco/. The pre-trained checkpoint (tools/model_converters/
# xvlm_to_mmvlg.py, or an mmvlg pre-training run): --cfg-options load_from=/path/to/xvlm_4m_mmvlg.pth
# (and model.language_model.name_or_path=/path/to/bert-base-uncased for the tokenizer and the BERT layout).
_base_ = ['../_base_/models/xvlm_swin-b_bert-base.py', '../_base_/datasets/coco_retrieval.py',
          '../_base_/default_runtime.py']

img_scale = (384, 384)
k_test = 256
batch_size = 20
num_gpus = 8
max_epochs = 10
lr = 3e-5

model = dict(
    vision_encoder=dict(img_size=384, window_size=12, pretrained=None),
    language_model=dict(max_length=40),
    mlm_head=None,
    bbox_head=None,
    rerank_cfg=dict(k=k_test, add_similarity=False, batch_size=64))
# a pre-training checkpoint's MLM and box heads are not part of this model (load_from drops them by name)
custom_hooks = [dict(type='CheckpointKeysHook', allow_unexpected=[r'^mlm_head\.', r'^bbox_head\.'])]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    # the authors' RandomResizedCrop(384, scale=(0.5, 1)): a crop of 50-100% of each side, then the resize
    dict(type='mmdet.RandomCrop', crop_type='relative_range', crop_size=(0.5, 0.5)),
    dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='PackRegionTextInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackImageTextInputs'),
]
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(optimizer=dict(lr=lr, weight_decay=0.01))
# num_warmup_steps: 0.1 of the iterations = 1 of the 10 epochs
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=max_epochs // 10,
         convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True, begin=max_epochs // 10,
         end=max_epochs, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch_size * num_gpus)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='retrieval/R_mean',
                    rule='greater'))
