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
_base_ = ['../_base_/schedules/fiber_vqa_10e.py', '../_base_/default_runtime.py']
answer_list = 'data/vqav2/answer_list.json'
embed_dims = 768
model = dict(
    type='FIBERVQA',
    embed_dims=embed_dims,
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='FIBERBackbone',
        num_fusion_layers=6,
        visual=dict(
            type='mmdet.SwinTransformer', pretrain_img_size=384, embed_dims=128, depths=(2, 2, 18, 2),
            num_heads=(4, 8, 16, 32), window_size=12, mlp_ratio=4, drop_path_rate=0.2, patch_norm=True,
            out_indices=(3, ), with_cp=False),
        visual_checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
        'swin_base_patch4_window12_384_22k.pth',
        language_model=dict(type='HFTextEncoder', name_or_path='roberta-base', max_length=50),
        with_cp=False),
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
val_evaluator = dict(type='VQAAccuracy')
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='vqa/accuracy', rule='greater'))
# For test-dev/test-std the authors train on train + val (all but a small held-out part) and submit the answers
# of test2015 to the evaluation server; a test set without annotations loads with answer_file=None.
