# SynthRef, the embedded default: generated on first use under data/synthref (deterministic by seed).
# 8000 train scenes x 2 expressions, 500 scenes each for val / testA (attribute + extreme expressions) /
# testB (relation expressions); 128x128 images with 3-5 objects whose half sides are 7-9% (small) or 12-15%
# (big) of the image side. See mmvlg/datasets/synthetic/synthref.py.
dataset_type = 'SynthRefDataset'
data_root = 'data/synthref/'
synthref_generate = dict(
    num_scenes=dict(train=8000, val=500, testA=500, testB=500), expressions_per_scene=2, image_size=128,
    min_objects=3, max_objects=5, small_size=(0.07, 0.09), big_size=(0.12, 0.15), seed=0)
backend_args = None

# The images are 128x128 already: no resize. No random crop: it could cut away the anchor object of a
# relation ("left of the blue square") and make the expression wrong.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadGroundingAnnotations'),
    dict(type='GroundingRandomFlip', prob=0.5),
    dict(type='PackGroundingInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadGroundingAnnotations'),
    dict(type='PackGroundingInputs'),
]

train_dataloader = dict(
    batch_size=32, num_workers=1, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='annotations/finetune_synthref_train.json',
                 data_prefix=dict(img='images/'), generate=synthref_generate, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='annotations/finetune_synthref_val.json',
                 data_prefix=dict(img='images/'), generate=synthref_generate, test_mode=True,
                 pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type=dataset_type, data_root=data_root, ann_file=f'annotations/finetune_synthref_{split}.json',
             data_prefix=dict(img='images/'), generate=synthref_generate, test_mode=True,
             pipeline=test_pipeline) for split in ('val', 'testA', 'testB')]))
val_evaluator = dict(type='RefExpMetric', topk=(1, 5, 10), iou_thr=0.5)
test_evaluator = val_evaluator
