# MDETR's referring-expression fine-tuning input (ashkamath/mdetr, datasets/coco.py make_coco_transforms): random
# horizontal flip (expressions swap left/right), a random crop that keeps the target box, shorter side resized to one
# of 480-800 (step 32) with the longer side at most 1333; at test time shorter side 800. Used by refcoco*_mdetr.py.
mdetr_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadGroundingAnnotations'),
    dict(type='GroundingRandomFlip', prob=0.5),
    dict(type='RandomCropKeepBoxes', min_ratio=0.6, prob=0.5),
    dict(type='mmdet.RandomChoiceResize', scales=[(1333, s) for s in range(480, 801, 32)], keep_ratio=True),
    dict(type='PackGroundingInputs'),
]
mdetr_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadGroundingAnnotations'),
    dict(type='PackGroundingInputs'),
]
