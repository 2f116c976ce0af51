# SiRi (arXiv:2207.13325) on refcocog: MDETR* trained for 55 epochs, then retrained in rounds of 30 epochs. At the
# start of every round SiRiHook keeps the vision-language encoder and re-initializes everything else (ResNet-101
# and RoBERTa back to their pretrained weights, the projections, decoder, queries and head to their initial
# random draw), resets the optimizer and restarts the learning-rate warm-up (sections 3.2 and 4.2).
# The paper retrains until the validation accuracy converges, usually after 5 to 8 rounds; this config runs
# 5 rounds (for more, raise num_rounds and train_cfg.max_epochs together, e.g.
#   --cfg-options custom_hooks.1.num_rounds=8 train_cfg.max_epochs=295).
_base_ = ['../mdetr/mdetr-star_r101_roberta-base_4xb18-55e_refcocog.py']

initial_epochs = 55
round_epochs = 30
num_rounds = 5
max_epochs = initial_epochs + num_rounds * round_epochs
train_cfg = dict(max_epochs=max_epochs)

# The schedule of the initial stage: warm-up over its first 1%, then the constant learning rate of the paper
# ("keeping the learning rate unchanged", section 3.2; appendix B.3). SiRiHook rebuilds it at every round start,
# stretched to the round's 30 epochs.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=0.01 * initial_epochs,
         convert_to_iter_based=True),
]

# reinit='initial' and reset_optimizer='all' give what the authors' scripts give with one process per round.
siri_hook = dict(
    type='SiRiHook', initial=initial_epochs, round_length=round_epochs, num_rounds=num_rounds, keep=('encoder', ),
    reinit='initial', reset_optimizer='all', metric='refexp/Prec@1', rule='greater')
# The authors train with an EMA of the weights (decay 0.9998) and evaluate the EMA model; it restarts every round.
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.0002, update_buffers=True, priority=49),
    siri_hook,
]
