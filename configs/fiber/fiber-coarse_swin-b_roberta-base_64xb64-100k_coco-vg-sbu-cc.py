# FIBER-B coarse-grained pre-training (arXiv:2206.07643, sections 3.2 and 4): ITC + ITM (hard negatives) + MLM on
# COCO, Visual Genome, SBU and Conceptual Captions (about 4M images), 384x384 images, batch 4096 (64 GPUs x 64),
# 100k steps, AdamW 1e-4 (backbones) / 5e-4 (cross-modal parameters), 1k warm-up steps then linear decay.
# Validation: COCO 5k (Karpathy) image-text retrieval with the dual encoder.
_base_ = [
    '../_base_/models/fiber-coarse_swin-b_roberta-base.py', '../_base_/schedules/fiber_coarse_100k.py',
    '../_base_/default_runtime.py'
]
data_root = 'data/'
backend_args = None
img_scale = (384, 384)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackImageTextInputs'),
]
test_pipeline = train_pipeline
# Captions as COCO-captions JSON (COCO) or JSON lines {"image": ..., "caption": ...} (web pairs); see
# mmvlg/datasets/caption.py. The web-pair lists are the ones the authors' write_*.py scripts read.
train_datasets = [
    dict(type='CaptionDataset', data_root=data_root, ann_file='coco/annotations/captions_train2017.json',
         data_prefix=dict(img='coco/train2017/'), pipeline=train_pipeline),
    dict(type='CaptionDataset', data_root=data_root, ann_file='vg/vg_captions.jsonl',
         data_prefix=dict(img='vg/images/'), pipeline=train_pipeline),
    dict(type='CaptionDataset', data_root=data_root, ann_file='sbu/sbu_captions.jsonl',
         data_prefix=dict(img='sbu/images/'), pipeline=train_pipeline, skip_invalid=True),
    dict(type='CaptionDataset', data_root=data_root, ann_file='cc3m/cc3m_train.jsonl',
         data_prefix=dict(img='cc3m/images/'), pipeline=train_pipeline, skip_invalid=True),
]
train_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=train_datasets))
val_dataloader = dict(
    batch_size=64, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CaptionDataset', data_root=data_root, ann_file='coco/annotations/coco_karpathy_val.json',
                 data_prefix=dict(img='coco/'), test_mode=True, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CaptionDataset', data_root=data_root, ann_file='coco/annotations/coco_karpathy_test.json',
                 data_prefix=dict(img='coco/'), test_mode=True, pipeline=test_pipeline))
val_evaluator = dict(type='RetrievalRecallMetric', topk=(1, 5, 10))
test_evaluator = val_evaluator

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=10000, max_keep_ckpts=3,
                    save_best='retrieval/R_mean', rule='greater'))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
