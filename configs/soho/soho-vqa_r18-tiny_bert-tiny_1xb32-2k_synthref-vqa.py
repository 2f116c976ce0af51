# A tiny SOHO VQA fine-tuning that runs on CPU with no download: SynthRef VQA (configs/_base_/datasets/synthref_vqa.py:
# generated on first use under data/synthref_vqa, 64x64 scenes, up to 4 questions each about counts, existence,
# colours, shapes and relations), resized to 128x128 as the tiny pre-training; the tiny pre-training config's model
# sizes (soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions.py: ResNet-18 of base width 16, layer4 at stride 1, the
# neck's 2x2 max-pool -> 4x4 visual tokens; 3-layer, 64-wide BERT) with the dictionary skipped (the transformer reads
# the dictionary's input features, as the paper and the released VQA neck), [CLS] -> Linear(64, 256) - ReLU -
# Dropout(0.5) - Linear(256, 19 answers) (the released head's shape), soft-score BCE; VQA accuracy on the val scenes,
# overall and per question type. From scratch, or from the tiny pre-training with
#   --cfg-options load_from=work_dirs/soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions/iter_2000.pth
# (its word embeddings are of the captions' vocabulary and map onto this one word by word: checkpoint_vocab; its
# dictionary, gate, MLM and ITM heads are dropped: CheckpointKeysHook below allows them).
_base_ = ['../_base_/datasets/synthref_vqa.py', '../_base_/models/soho_r18-tiny_bert-tiny.py',
          '../_base_/schedules/soho_tiny_2k.py']
# the questions' words (configs/_base_/datasets/synthref_vqa.py), then the answers' other words
vocab = _base_.question_vocab + [a for a in _base_.answers if a not in _base_.question_vocab]
model = dict(
    type='SOHOVQA',
    language_model=dict(max_length=24, tokenizer=dict(vocab=vocab)),
    vqa_head=dict(type='SOHOVQAHead', answers=_base_.answers, hidden_dims=4 * _base_.width, dropout=0.5))

_pipeline = [dict(type='LoadImageFromFile'), dict(type='mmdet.Resize', scale=(128, 128), keep_ratio=False),
             dict(type='PackImageTextInputs')]
train_dataloader = dict(dataset=dict(pipeline=_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_pipeline))
test_dataloader = val_dataloader

auto_scale_lr = dict(enable=False, base_batch_size=32)
default_hooks = dict(checkpoint=dict(save_best='vqa/accuracy'))
# a SOHO pre-training checkpoint (load_from): its pre-training heads and dictionary parts are not in this model, the
# VQA head is new, the word embeddings are remapped from the captions' vocabulary (checkpoint_vocab)
custom_hooks = [
    dict(type='CheckpointKeysHook',
         allow_unexpected=[r'^(mlm_head|itm_head)\.', r'^neck\.(dictionary|entry_proj|gate)\.'],
         allow_missing=[r'^vqa_head\.', r'^language_model\.model\.embeddings\.word_embeddings\.weight$'])
]
