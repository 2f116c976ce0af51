# The schedule of SOHO's tiny downstream configs on CPU: 2000 iterations, validation and a checkpoint every 500
# (a config sets `default_hooks.checkpoint.save_best`); one AdamW for every part (the paper's SGD for the backbone
# is not used in the tiny configs), warm-up then linear decay; the released fine-tuning's gradient clipping (max
# norm 10). With the default runtime (its hooks and log processor set here).
_base_ = ['../default_runtime.py']
max_iters = 2000
warmup_iters = 100
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=500)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2, rule='greater'))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
