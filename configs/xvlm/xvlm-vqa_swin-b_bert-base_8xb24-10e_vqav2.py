# X-VLM-base VQA v2 fine-tuning as released (arXiv:2111.08276 section 4.2, Table 3: test-dev 78.07, test-std 78.09
# for the 4M model; the authors' configs/VQA.yaml): VQA as generation. The pre-trained model's image, text and
# cross encoders read the question; a 6-layer answer decoder (num_dec_layers: 6), initialized from the cross encoder
# (layers 6-11 of BERT-base; its cross-attention key/value read the 768-wide question, not the 1024-wide image, so
# they start fresh and train at 2x: lr_mult 2 of the authors' init_params) and from the MLM head, is trained on the
# annotators' answers, each weighted by the share of the 10 annotators who gave it. Inference: the k_test=128
# answers of the answer list whose first token is the most probable, re-ranked by the full sequence.
# Swin-B at 384 px, window 12 (the 7x7 relative-position tables of the pre-training are resized on load), 40 question
# tokens; batch 24 per GPU on 8 GPUs, 10 epochs, AdamW (0.9, 0.98) lr 5e-5, weight decay 0.01 (none on biases and
# norms), linear warm-up over 10% of the iterations then linear decay. (VQA_480.yaml: 480 px, window 15.)
# Data by local path in the VQA v2 release's format (VQAv2Dataset): questions/annotations JSON under data/vqav2/,
# COCO images under data/coco/. The answer list: the authors' data/finetune/answer_list.json (3128 answers, a JSON
# list; load_answer_list reads it) or tools/dataset_converters/vqav2_answer_list.py. The pre-trained checkpoint
# (tools/model_converters/xvlm_to_mmvlg.py, or an mmvlg pre-training run; its cross encoder and MLM head fill the
# answer decoder on load):
#   --cfg-options load_from=/path/to/xvlm_4m_mmvlg.pth model.language_model.name_or_path=/path/to/bert-base-uncased
# Differences from the release, by the data mmvlg reads: the authors also train on val and on Visual Genome QA
# (vg_qa.json, each answer weighted 0.5), in ALBEF's JSON format; here train2014 alone (add val2014 to the training
# ConcatDataset for test-dev). Their answers outside the answer list are trained on; here only the listed ones
# (answer_labels), the others counted in a warning (unlisted_answers='warn'; 'error' stops at the first). Their
# RandAugment and the flip of images whose question and answers name no left/right are
# left out; their answers end with two [SEP] tokens (answer_suffix='[SEP]', set below).
_base_ = ['../_base_/models/xvlm_swin-b_bert-base.py', '../_base_/datasets/vqav2.py',
          '../_base_/default_runtime.py']

img_scale = (384, 384)
batch_size = 24
num_gpus = 8
max_epochs = 10
lr = 5e-5
num_dec_layers = 6

model = dict(
    _delete_=True,
    type='XVLMVQA',
    data_preprocessor=_base_.model.data_preprocessor,
    vision_encoder=dict(_base_.model.vision_encoder, img_size=384, window_size=12, pretrained=None),
    language_model=dict(_base_.model.language_model, max_length=40),
    answer_list=_base_.answer_list,
    answer_head=dict(type='AnswerGenerationHead', num_layers=num_dec_layers, add_first_token=True),
    k_test=128,
    answer_weight='count',
    answer_suffix='[SEP]')

train_pipeline = [
    dict(type='LoadImageFromFile'),
    # the authors' RandomResizedCrop(384, scale=(0.5, 1)): a crop of 50-100% of each side, then the resize
    dict(type='mmdet.RandomCrop', crop_type='relative_range', crop_size=(0.5, 0.5)),
    dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackImageTextInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackImageTextInputs'),
]
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# test-dev / test-std: test2015 questions with answer_file=None, and tools/test.py --out PREFIX writes the results
# file for the evaluation server.

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
# lr_mult 2 only for the decoder's fresh cross-attention key/value (the authors' init_params); everything else,
# the pre-trained cross-attention of the cross encoder included, at 1x.
fresh = dict(lr_mult=2.0)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01),
    clip_grad=None,
    paramwise_cfg=dict(
        _delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0, bypass_duplicate=True,
        custom_keys={f'answer_head.decoder.cross_attns.{i}.self.{p}': fresh
                     for i in range(num_dec_layers) for p in ('key', 'value')}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=max_epochs // 10,
         convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True, begin=max_epochs // 10,
         end=max_epochs, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch_size * num_gpus)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='vqa/accuracy', rule='greater'))
