# SynthRef VQA, the embedded VQA set: generated on first use under data/synthref_vqa (deterministic by seed).
# 4000 train / 300 val scenes of 64x64 with 3-5 shapes, up to 4 questions each about counts, existence, colours,
# shapes and relations, in the VQA v2 format. See mmvlg/datasets/synthetic/vqa.py.
# every word of the questions (mmvlg.datasets.synthref_vqa.question_vocabulary(); a test checks it)
question_vocab = [
    '?', 'a', 'above', 'are', 'below', 'big', 'blue', 'bottommost', 'circle', 'circles', 'color', 'diamond',
    'diamonds', 'green', 'how', 'is', 'left', 'leftmost', 'many', 'object', 'of', 'purple', 'red', 'right',
    'rightmost', 'shape', 'small', 'square', 'squares', 'the', 'there', 'topmost', 'triangle', 'triangles', 'what',
    'white', 'yellow'
]
# every possible answer (mmvlg.datasets.synthref_vqa.synthref_vqa_answers(); a test checks it)
answers = ['yes', 'no', '0', '1', '2', '3', '4', '5', '6', 'red', 'green', 'blue', 'yellow', 'purple', 'white',
           'circle', 'square', 'triangle', 'diamond']

data_root = 'data/synthref_vqa/'
generate = dict(num_scenes=dict(train=4000, val=300), questions_per_scene=4, image_size=64, seed=0)
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackImageTextInputs')]
train_dataloader = dict(
    batch_size=32, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SynthRefVQADataset', data_root=data_root, ann_file='annotations/questions_train.json',
                 answer_file='annotations/answers_train.json', data_prefix=dict(img='images/'), generate=generate,
                 answer_list=answers, pipeline=pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SynthRefVQADataset', data_root=data_root, ann_file='annotations/questions_val.json',
                 answer_file='annotations/answers_val.json', data_prefix=dict(img='images/'), generate=generate,
                 answer_list=answers, test_mode=True, pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='VQAAccuracy', group_by='question_type')  # also per question type
test_evaluator = val_evaluator
