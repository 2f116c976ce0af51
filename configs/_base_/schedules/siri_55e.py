# SiRi/MDETR optimisation: AdamW, lr 5e-5 (backbone 5e-5 in the authors' SiRi scripts), text encoder 1e-5,
# weight decay 1e-4, gradient clipping at max-norm 0.1, linear warm-up over the first 1% of the steps then
# linear decay to 0 (MDETR's "linear_with_warmup"), 55 epochs.
max_epochs = 55
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-5, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={'language_model': dict(lr_mult=0.2)}))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=0.55, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True, begin=0.55, end=max_epochs,
         convert_to_iter_based=True),
]
# Batch 72 on 4 GPUs in the paper (18 per GPU).
auto_scale_lr = dict(enable=False, base_batch_size=72)
