# MDETR's RefCOCO/+/g fine-tuning (ashkamath/mdetr, .github/refexp.md and configs/refcoco.json): 5 epochs,
# Adam(W) lr 5e-5, backbone 1e-5 (lr_backbone), text encoder 1e-5, weight decay 1e-4, gradient clipping 0.1,
# learning rate divided by 10 after epoch 3 (lr_drop). MDETR ramps the text encoder's rate up over the first 1%
# of the steps and then down linearly; here every group gets the warm-up and the step drop.
max_epochs = 5
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-5, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={'language_model': dict(lr_mult=0.2), 'backbone': dict(lr_mult=0.2)}))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=0.05, convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=max_epochs, milestones=[3], gamma=0.1),
]
auto_scale_lr = dict(enable=False, base_batch_size=8)
