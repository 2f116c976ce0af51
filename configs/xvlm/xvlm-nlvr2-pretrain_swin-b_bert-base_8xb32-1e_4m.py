# X-VLM-base's text-assignment step before NLVR2 (the paper, section 4.2: one epoch on the 4M pre-training images;
# the authors' NLVR_pretrain.py and models/model_nlvr_pretrain.py): each caption gets its own image and a hard
# negative one (left or right) or two hard negatives ("neither", 1/3), drawn with the softmax of the pre-trained
# ITC image similarities / 0.07 (the ITC head only read, frozen), and the two-image cross encoder of the NLVR2 model
# (xvlm-nlvr2_swin-b_bert-base_8xb10-10e_nlvr2.py) with a linear ta_head (768 -> 3) says which; cross entropy.
# The authors' NLVR_pretrain_O1.yaml is not released: the image-text pairs, resolution and window are those of the
# NLVR2 fine-tuning it initializes (384 px, window 12), the batch (32 per GPU on 8 GPUs) and optimizer (AdamW lr 3e-5,
# 2x for ta_head, weight decay 0.01, 10% linear warm-up then linear decay) are our choices; the pretraining
# transform (RandomResizedCrop(scale=(0.2, 1)) + flip) as released.
# Data by local path: the pre-training's image-text pairs (JSON lines {"image", "caption"}, CaptionDataset). The
# pre-trained (single-image) checkpoint, its cross layers copied to both images on load:
#   --cfg-options load_from=/path/to/xvlm_4m_mmvlg.pth model.language_model.name_or_path=/path/to/bert-base-uncased
_base_ = ['./xvlm-nlvr2_swin-b_bert-base_8xb10-10e_nlvr2.py']

img_scale = (384, 384)
batch_size = 32
num_gpus = 8
data_root = 'data/xvlm/'
image_root = 'images/'
pair_files = ['pretrain/coco.jsonl', 'pretrain/vg.jsonl', 'pretrain/sbu.jsonl', 'pretrain/cc3m.jsonl']
num_pairs = 5114489
max_iters = -(-num_pairs // (batch_size * num_gpus))  # one epoch
warmup_iters = max_iters // 10

model = dict(
    type='XVLMNLVRPretrain',
    cls_head=None,
    itc_head=dict(_delete_=True, type='ITCHead', embed_dims=256, temperature=0.07, temperature_range=(0.001, 0.5),
                  pooler=dict(type='DualStreamPooler', image_pooling='cls', tanh_pooler=False, pool_first=True)),
    ta_head=dict(type='Linear'),
    temperature=0.07,
    neither_prob=1.0 / 3.0)

pair_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmdet.RandomCrop', crop_type='relative_range', crop_size=(0.45, 0.45)),
    dict(type='mmdet.Resize', scale=img_scale, keep_ratio=False),
    dict(type='mmdet.RandomFlip', prob=0.5),
    dict(type='PackRegionTextInputs'),
]
train_dataloader = dict(
    _delete_=True,
    batch_size=batch_size, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='CaptionDataset', data_root=data_root, ann_file=f, ann_format='jsonl',
             data_prefix=dict(img=image_root), skip_invalid=True, check_images=False, pipeline=pair_pipeline)
        for f in pair_files]))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters + 1)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'cls_head': dict(lr_mult=1.0), 'ta_head': dict(lr_mult=2.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
auto_scale_lr = dict(enable=False, base_batch_size=batch_size * num_gpus)
default_hooks = dict(
    checkpoint=dict(_delete_=True, type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
