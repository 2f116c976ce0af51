# SiRi on 50% of SynthRef's training expressions (whole scenes, a fixed subset), evaluated on the full
# validation set: the small-data study of arXiv:2207.13325 (section 4.6, Fig. 8). As the paper trains longer on
# small data, the epochs grow so that the stages have as many iterations as on the full set: 6 initial
# epochs, then 2 rounds of 2 epochs.
_base_ = ['./siri_mdetr-star_r18-slim_bert-mini_1xb32-3e-2x1e_synthref.py']

train_dataloader = dict(dataset=dict(fraction=0.5))

initial_epochs = 6
round_epochs = 2
num_rounds = 2
max_epochs = initial_epochs + num_rounds * round_epochs
# Validate once per round_epochs epochs, i.e. as often (in iterations) as the full-data config validates: every
# 1/fraction epochs of validation on the full val set would otherwise dominate the run time.
train_cfg = dict(max_epochs=max_epochs, val_interval=round_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0, end=initial_epochs, T_max=initial_epochs,
         convert_to_iter_based=True),
]
custom_hooks = [
    dict(_base_.siri_hook, initial=initial_epochs, round_length=round_epochs, num_rounds=num_rounds),
]
