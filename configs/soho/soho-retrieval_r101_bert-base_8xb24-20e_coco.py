# SOHO image-text retrieval fine-tuning on COCO (Karpathy split; the paper's section 4.2.1, Table 2, 5k test): the
# paper's R-101 pre-training (soho_r101_bert-base_32xb128-40e_coco-vg.py, loaded with load_from) with the dictionary
# skipped; ITM alone as a binary classifier on the fused [CLS] (the pre-training's ITM head), every image of a
# mini-batch of t = 24 image-caption pairs against every caption of it ("all the other t - 1 captions are used as
# the unaligned captions": 24 x 24 pairs, itm_cfg.rule='all'); AdamW lr 1e-4, weight decay 1e-2, 20 epochs, halved
# at epochs 3, 5, 9 and 13 (_base_/schedules/soho_retrieval_20e.py). The paper does not give the number of GPUs nor
# whether t counts per GPU; here t = 24 per GPU on 8 GPUs (the in-batch negatives are those of the GPU). Images as
# in the pre-training (shorter side 600, longer at most 1000), no flip. Retrieval: every (image, caption) pair of
# the gallery scored by ITM (match minus no-match logit), Recall@1/5/10 both ways (RetrievalTestLoop). The test
# reports both of the paper's figures: the 5k test (retrieval/...) and the 1k test (retrieval_1k/...: the 5000 test
# images in five consecutive folds of 1000 with their captions, each query ranked within its fold, the recalls
# averaged over the folds: RetrievalRecallMetric(num_folds=5)); every pair is scored by ITM, so each fold is ranked
# exactly as a 1000-image gallery of its own. From the pre-training checkpoint:
#   --cfg-options load_from=/path/to/soho_r101_pretrain.pth
#                 model.language_model.name_or_path=/path/to/bert-base-uncased
_base_ = [
    '../_base_/models/soho_r101_bert-base.py', '../_base_/datasets/coco_retrieval.py',
    '../_base_/schedules/soho_retrieval_20e.py', '../_base_/default_runtime.py'
]
num_gpus = 8
batch_size = 24  # t: image-caption pairs per GPU, 24 x 24 ITM pairs
model = dict(
    type='SOHO',
    mlm_head=None,
    itm_head=dict(type='ITMHead', loss_weight=1.0),
    itm_cfg=dict(rule='all'),
    losses=('itm', ),
    use_dictionary=False,
    retrieval_cfg=dict(batch_size=256))
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=_base_.soho_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_base_.soho_pipeline))
test_dataloader = dict(dataset=dict(pipeline=_base_.soho_pipeline))
# the 5k test and the 1k test (mean of five folds of 1000 images) side by side
test_evaluator = [
    dict(type='RetrievalRecallMetric', topk=(1, 5, 10)),
    dict(type='RetrievalRecallMetric', topk=(1, 5, 10), num_folds=5, prefix='retrieval_1k'),
]
auto_scale_lr = dict(enable=False, base_batch_size=num_gpus * batch_size)
# the pre-training checkpoint: its MLM head and its dictionary, gate and entry projection are not in this model
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='retrieval/R_mean',
                    rule='greater'))
custom_hooks = [
    dict(type='CheckpointKeysHook', allow_unexpected=[r'^mlm_head\.', r'^neck\.(dictionary|entry_proj|gate)\.'])
]
