# FIBER-B fine-tuned for VQA v2 (arXiv:2206.07643, sections 3.3 and 4.1, Table 3: test-dev 78.55, test-std 78.46):
# the coarse-grained model as a fusion encoder (Swin-B + RoBERTa-base fused in the top 6 layers), the pooled text
# and image features concatenated into a 2-layer classifier over the 3129-answer vocabulary, BCE against soft
# scores. The authors' task_finetune_vqa: 576x576 images, questions of at most 50 tokens, batch 512, 10 epochs
# (configs/_base_/schedules/fiber_vqa_10e.py). Start from a coarse-grained checkpoint:
#   --cfg-options load_from=/path/to/fiber_pretrain.pth model.backbone.visual_checkpoint=None \
#                 model.backbone.language_model.name_or_path=/path/to/roberta-base
# The answer list (3129 answers), from the train and val annotations:
#   python tools/dataset_converters/vqav2_answer_list.py data/vqav2/v2_mscoco_{train,val}2014_annotations.json \
#       --out data/vqav2/answer_list.json
# The backbone is the coarse-grained model's (configs/_base_/models/fiber-coarse_swin-b_roberta-base.py) with the
# fine-tuning text length; its pre-training heads are replaced by the VQA head.
_base_ = [
    '../_base_/models/fiber-coarse_swin-b_roberta-base.py', '../_base_/schedules/fiber_vqa_10e.py',
    '../_base_/default_runtime.py'
]
answer_list = 'data/vqav2/answer_list.json'
model = dict(
    _delete_=True,
    type='FIBERVQA',
    embed_dims=_base_.model.embed_dims,
    data_preprocessor=_base_.model.data_preprocessor,
    backbone=dict(_base_.model.backbone, language_model=dict(_base_.model.backbone.language_model, max_length=50)),
    vqa_head=dict(type='VQAHead', answers=answer_list, loss_weight=1.0))

data_root = 'data/'
backend_args = None
img_scale = (576, 576)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackImageTextInputs'),
]
test_pipeline = train_pipeline
dataset_type = 'VQAv2Dataset'
common = dict(type=dataset_type, data_root=data_root, answer_list=answer_list)
train_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(ann_file='vqav2/v2_OpenEnded_mscoco_train2014_questions.json',
                 answer_file='vqav2/v2_mscoco_train2014_annotations.json', data_prefix=dict(img='coco/train2014/'),
                 pipeline=train_pipeline, **common))
val_dataloader = dict(
    batch_size=64, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(ann_file='vqav2/v2_OpenEnded_mscoco_val2014_questions.json',
                 answer_file='vqav2/v2_mscoco_val2014_annotations.json', data_prefix=dict(img='coco/val2014/'),
                 test_mode=True, pipeline=test_pipeline, **common))
test_dataloader = val_dataloader
val_evaluator = dict(type='VQAAccuracy', group_by='answer_type')  # also yes/no, number, other
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='vqa/accuracy', rule='greater'))
# For test-dev/test-std the authors train on train + val (all but a small held-out part) and submit the answers
# of test2015 to the evaluation server; a test set without annotations loads with answer_file=None.
