# FIBER's VQA v2 fine-tuning schedule (the authors' task_finetune_vqa; the paper gives no VQA fine-tuning settings):
# 10 epochs, AdamW lr 2e-5 for the backbones, x5 for the cross-modal parameters (the gated cross-attentions and
# the poolers: the authors' "cross_modal", "i2t", "t2i"), x50 for the answer classifier ("vqa_classifier"), weight
# decay 0.01 (none on norms and biases), linear warm-up over the first 10% of the steps, then linear decay to 0.
max_epochs = 10
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

cross_modal = dict(lr_mult=5.0)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-5, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0,
        custom_keys={'backbone.i2t_attns': cross_modal, 'backbone.t2i_attns': cross_modal, 'pooler': cross_modal,
                     'vqa_head': dict(lr_mult=50.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
# the authors' batch: 512 questions (8 GPUs x 64, or fewer per GPU with gradient accumulation)
auto_scale_lr = dict(enable=False, base_batch_size=512)
