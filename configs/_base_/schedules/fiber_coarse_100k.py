# FIBER's coarse-grained pre-training schedule (arXiv:2206.07643, section 4, "Implementation Details"): 100k
# steps, AdamW with peak learning rates 1e-4 for the backbones and 5e-4 for the cross-modal parameters (the
# gated cross-attentions, the projections/poolers and the heads, lr_mult 5 as the authors' lr_mult_cross_modal and
# lr_mult_head), weight decay 0.01 (none on norms and biases, as the authors), linear warm-up over the first 1k
# steps, then linear decay to 0. (The authors' released pre-training config writes lr 1e-5 x 5 and a 10% warm-up;
# the paper's numbers are used here.)
max_iters = 100000
warmup_iters = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10000)
val_cfg = dict(type='RetrievalValLoop')
test_cfg = dict(type='RetrievalTestLoop')

cross_modal = dict(lr_mult=5.0)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0,
        custom_keys={
            'backbone.i2t_attns': cross_modal, 'backbone.t2i_attns': cross_modal, 'pooler': cross_modal,
            'itc_head': cross_modal, 'itm_head': cross_modal, 'mlm_head': cross_modal, 'vqa_head': cross_modal,
            'temperature': dict(lr_mult=5.0, decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
# 64 GPUs x 64 image-text pairs = 4096
auto_scale_lr = dict(enable=False, base_batch_size=4096)
