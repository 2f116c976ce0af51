# VQA v2 (Goyal et al., 2017) in the release's format (VQAv2Dataset): questions and annotations JSON under
# data/vqav2/, COCO images under data/coco/; train2014 trains, val2014 validates (VQAAccuracy, also by answer type).
# The answer list (3129 answers) from the train and val annotations:
#   python tools/dataset_converters/vqav2_answer_list.py data/vqav2/v2_mscoco_{train,val}2014_annotations.json \
#       --out data/vqav2/answer_list.json
# Training answers outside the list are counted in a warning (unlisted_answers='warn'; 'error' stops at the first).
# A model config sets its pipelines (the one below only loads the image and packs it with the question) and the
# batch size, and reads the answer list for its head as _base_.answer_list:
#   train_dataloader = dict(batch_size=..., dataset=dict(pipeline=train_pipeline)), and val / test likewise
# test-dev / test-std: the test2015 questions with answer_file=None, and tools/test.py --out PREFIX writes the
# results file for the evaluation server.
data_root = 'data/'
answer_list = 'data/vqav2/answer_list.json'
vqa_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackImageTextInputs')]
train_dataloader = dict(
    batch_size=32, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='VQAv2Dataset', data_root=data_root, answer_list=answer_list,
                 ann_file='vqav2/v2_OpenEnded_mscoco_train2014_questions.json',
                 answer_file='vqav2/v2_mscoco_train2014_annotations.json', data_prefix=dict(img='coco/train2014/'),
                 unlisted_answers='warn', pipeline=vqa_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VQAv2Dataset', data_root=data_root, answer_list=answer_list,
                 ann_file='vqav2/v2_OpenEnded_mscoco_val2014_questions.json',
                 answer_file='vqav2/v2_mscoco_val2014_annotations.json', data_prefix=dict(img='coco/val2014/'),
                 test_mode=True, pipeline=vqa_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='VQAAccuracy', group_by='answer_type')
test_evaluator = val_evaluator
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
