# FIBER's fine-grained optimization (arXiv:2206.07643, section 4): AdamW, lr 1e-5 for the language backbone and
# 1e-4 for the rest (the Swin, the cross-attentions, FPN and head), weight decay 0.01, linear warm-up over 2k
# steps (factor 1e-3) then a constant rate with two drops by 10x at 67% and 89% of training (epochs 13 and 18
# of 20; 20 epochs is the authors' RefCOCO fine-tuning length). The authors' RefCOCO fine-tuning files use
# lr 1e-5 everywhere and weight decay 1e-4; override optim_wrapper.optimizer to reproduce them.
max_epochs = 20
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'backbone.language_model': dict(lr_mult=0.1)}))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=2000),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=[13, 18], gamma=0.1),
]
# 8 GPUs x 2 images in the authors' RefCOCO fine-tuning (64 for fine-grained pre-training)
auto_scale_lr = dict(enable=False, base_batch_size=16)
