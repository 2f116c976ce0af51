# SynthRef NLVR2, the embedded NLVR2-style set: generated on first use under data/synthref_nlvr2 (deterministic by
# seed): pairs of 64x64 scenes of 3-5 shapes with true/false statements of 7 comparison templates, each template
# half true (mmvlg/datasets/synthetic/nlvr2.py); both images of a pair resized to 64x64 (a config
# with other encoders sets its own pipeline); accuracy overall and per template.
# every word of the SynthRef captions and NLVR2 statements (a test checks it)
nlvr2_vocab = [
    ',', ':', 'a', 'above', 'and', 'are', 'below', 'big', 'blue', 'both', 'bottommost', 'circle', 'circles', 'contain',
    'contains', 'diamond', 'diamonds', 'eight', 'eleven', 'exactly', 'fewer', 'five', 'four', 'from', 'green', 'has',
    'have', 'image', 'images', 'in', 'is', 'left', 'leftmost', 'more', 'nine', 'number', 'object', 'of', 'one',
    'purple', 'red', 'right', 'rightmost', 'same', 'seven', 'six', 'small', 'square', 'squares', 'ten', 'than', 'the',
    'there', 'thirteen', 'three', 'to', 'topmost', 'triangle', 'triangles', 'twelve', 'two', 'white', 'yellow', 'zero'
]
data_root = 'data/synthref_nlvr2/'
generate = dict(num_pairs=dict(train=2000, val=250), statements_per_pair=2, image_size=64, seed=0)
pair_pipeline = [
    dict(type='ApplyToImagePair', transforms=[dict(type='LoadImageFromFile'),
                                              dict(type='mmdet.Resize', scale=(64, 64), keep_ratio=False)]),
    dict(type='PackNLVR2Inputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='nlvr2_collate'),
    dataset=dict(type='SynthRefNLVR2Dataset', data_root=data_root, ann_file='annotations/nlvr2_train.json',
                 data_prefix=dict(img='images/'), generate=generate, pipeline=pair_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='nlvr2_collate'),
    dataset=dict(type='SynthRefNLVR2Dataset', data_root=data_root, ann_file='annotations/nlvr2_val.json',
                 data_prefix=dict(img='images/'), generate=generate, test_mode=True, pipeline=pair_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ClassificationAccuracy', prefix='nlvr2', group_key='template')
test_evaluator = val_evaluator
