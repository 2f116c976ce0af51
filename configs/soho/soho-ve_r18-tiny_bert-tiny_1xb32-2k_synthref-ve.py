# A tiny SOHO visual-entailment fine-tuning that runs on CPU with no download: SynthRef entailment (generated on first
# use under data/synthref_ve: 64x64 scenes of 3-6 shapes, half of them with a dark cover hiding a band along one
# side; up to 3 hypotheses per scene of 5 templates (exist, none, count, count_shape, at_least), each template and
# each hypothesis about a third entailment / neutral / contradiction, so that the hypothesis alone does not give the
# label; SNLI-VE's JSON lines, see mmvlg/datasets/synthetic/entailment.py), resized to 128x128; the tiny SOHO
# pre-training's model sizes (soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions.py) with the dictionary skipped;
# one (image, hypothesis) pair through the single-stream transformer, [CLS] -> MLP (Linear(64, 128) - LN - GELU -
# Linear(128, 3)); accuracy on the val hypotheses, overall and per template. Its hypothesis-only baseline:
#   python tools/analysis_tools/text_only_baseline.py configs/soho/soho-ve_r18-tiny_bert-tiny_1xb32-2k_synthref-ve.py
# From scratch, or from the tiny pre-training with
#   --cfg-options load_from=work_dirs/soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions/iter_2000.pth
# (the captions' vocabulary maps onto this one word by word: checkpoint_vocab).
_base_ = ['../_base_/models/soho_r18-tiny_bert-tiny.py', '../_base_/schedules/soho_tiny_2k.py']
# every word of the SynthRef captions and entailment hypotheses (a test checks it)
ve_vocab = [
    ',', ':', 'a', 'above', 'and', 'are', 'at', 'below', 'big', 'blue', 'bottommost', 'circle', 'circles', 'diamond',
    'diamonds', 'exactly', 'five', 'four', 'from', 'green', 'is', 'least', 'left', 'leftmost', 'no', 'of', 'one',
    'purple', 'red', 'right', 'rightmost', 'six', 'small', 'square', 'squares', 'the', 'there', 'three', 'to',
    'topmost', 'triangle', 'triangles', 'two', 'white', 'yellow'
]
model = dict(
    type='SOHOPairClassifier',
    num_images=1,
    num_classes=3,  # entailment, neutral, contradiction (SNLIVEDataset's labels 0, 1, 2)
    language_model=dict(max_length=24, tokenizer=dict(vocab=ve_vocab)),
    cls_head=dict(type='MLPBlock', hidden_dims=2 * _base_.width))

data_root = 'data/synthref_ve/'
generate = dict(num_scenes=dict(train=4000, val=300), hypotheses_per_scene=3, image_size=64, seed=0)
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.Resize', scale=(128, 128), keep_ratio=False),
    dict(type='PackImageTextInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction', 'text',
                    'text_id', 'split', 'label', 'hypothesis_type')),
]
train_dataloader = dict(
    batch_size=32, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SynthRefEntailmentDataset', data_root=data_root, ann_file='annotations/ve_train.jsonl',
                 data_prefix=dict(img='images/'), generate=generate, pipeline=pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SynthRefEntailmentDataset', data_root=data_root, ann_file='annotations/ve_val.jsonl',
                 data_prefix=dict(img='images/'), generate=generate, test_mode=True, pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ClassificationAccuracy', prefix='ve', group_key='hypothesis_type')
test_evaluator = val_evaluator

auto_scale_lr = dict(enable=False, base_batch_size=32)
default_hooks = dict(checkpoint=dict(save_best='ve/accuracy'))
custom_hooks = [
    dict(type='CheckpointKeysHook',
         allow_unexpected=[r'^(mlm_head|itm_head)\.', r'^neck\.(dictionary|entry_proj|gate)\.'],
         allow_missing=[r'^cls_head\.', r'^language_model\.model\.embeddings\.word_embeddings\.weight$'])
]
