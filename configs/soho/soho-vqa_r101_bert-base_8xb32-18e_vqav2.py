# SOHO VQA v2 fine-tuning as in the paper (section 4.2.2, Table 4: test-dev 73.25, test-std 73.47): the R-101
# pre-training (soho_r101_bert-base_32xb128-40e_coco-vg.py, loaded with load_from) with the dictionary skipped, the
# fused [CLS] of question + image -> MLP -> the 3129 answers (the paper's "3,192" is the 3129 of its reference
# [19]), soft-score binary cross entropy (SOHOVQA). The paper's settings: batch 256 (8 GPUs x 32 here; the paper
# gives no GPU count), the pre-training's optimizers and learning rates (SGD lr 1e-2, weight decay 5e-4, for the
# backbone; AdamW lr 1e-4, weight decay 1e-2, for the rest), 18 epochs, the learning rates divided by 10 at epochs
# 12 and 16. Where the paper is silent:
# - the MLP: the released head's shape (SOHOVQAHead: Linear(768, 3072) - ReLU - Dropout(0.5) - Linear(3072, 3129));
# - images as in the pre-training (shorter side 600, longer at most 1000) for training and test, no flip (the
#   released VQA config draws the training shorter side in [400, 800]); questions of at most 40 tokens, the
#   pre-training's text length (every VQA v2 question fits; the release cuts at 16);
# - no warm-up, no gradient clipping, no accumulation, as the NLVR2 config (the paper: the same settings as VQA);
#   the release adds a 1000-iteration warm-up from 1/3, clipping at 4 and 2 accumulated iterations (512 questions
#   per update, not the paper's 256): optim_wrapper.{backbone,others}.clip_grad / accumulative_counts.
# Data: _base_/datasets/vqav2.py, train2014 trains and val2014 validates. The paper trains on train + val for its
# test-dev / test-std figures: add val2014 to the training set (a ConcatDataset of the two) and test on the test2015
# questions with answer_file=None (tools/test.py --out PREFIX writes the file for the evaluation server).
# From the pre-training checkpoint:
#   --cfg-options load_from=/path/to/soho_r101_pretrain.pth
#                 model.language_model.name_or_path=/path/to/bert-base-uncased
_base_ = ['../_base_/models/soho_r101_bert-base.py', '../_base_/datasets/vqav2.py',
          '../_base_/schedules/soho_finetune_18e.py', '../_base_/default_runtime.py']
num_gpus = 8
batch_size = 32
model = dict(type='SOHOVQA', vqa_head=dict(type='SOHOVQAHead', answers=_base_.answer_list, dropout=0.5))
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=_base_.soho_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_base_.soho_pipeline))
test_dataloader = val_dataloader

auto_scale_lr = dict(enable=False, base_batch_size=num_gpus * batch_size)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='vqa/accuracy', rule='greater'))
custom_hooks = [
    dict(type='CheckpointKeysHook', allow_unexpected=_base_.soho_pretrain_unexpected, allow_missing=[r'^vqa_head\.'])
]
