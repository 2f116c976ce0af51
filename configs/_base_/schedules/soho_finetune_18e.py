# SOHO's downstream fine-tuning (the paper, section 4: VQA, and NLVR2 "the same as VQA settings"): the
# pre-training's two optimizers, SGD (lr 1e-2, momentum 0.9, weight decay 5e-4) for the backbone and AdamW (lr 1e-4,
# weight decay 1e-2) for the rest, 18 epochs, the learning rates divided by 10 at epochs 12 and 16.
max_epochs = 18
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(
    constructor='ModuleOptimWrapperConstructor',
    backbone=dict(modules=['backbone'], type='OptimWrapper',
                  optimizer=dict(type='SGD', lr=1e-2, momentum=0.9, weight_decay=5e-4)),
    others=dict(modules=None, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-2)))
# the two optimizers under distributed training (MMEngine's DDP wrapper steps one optimizer wrapper only); by
# import path: the Runner looks the type up in MMEngine's root registry, which does not reach mmvlg's
model_wrapper_cfg = dict(type='mmvlg.engine.MultiOptimDistributedDataParallel', broadcast_buffers=False,
                         find_unused_parameters=False)
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[12, 16], gamma=0.1, begin=0, end=max_epochs)]
