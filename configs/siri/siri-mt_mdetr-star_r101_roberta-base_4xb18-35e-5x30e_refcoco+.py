# Multi-task SiRi (arXiv:2207.13325, section 3.3 and appendix A) on refcoco+: MDETR* with an auxiliary decoder
# (its own weights and head) fed with constant sine-cosine grid queries; the losses of both decoders are summed.
# 35 initial epochs (the dual-decoder model converges faster, section 4.2), then rounds of 30 epochs that keep
# the vision-language encoder and re-initialize everything else, both decoders included.
# The paper retrains until the validation accuracy converges, usually after 5 to 8 rounds; this config runs
# 5 rounds. The auxiliary decoder is dropped for deployment:
#   python tools/model_converters/strip_aux_decoder.py IN.pth OUT.pth
# and OUT.pth loads into siri_mdetr-star_r101_roberta-base_4xb18-55e-5x30e_refcoco+.py (the single-decoder model).
_base_ = ['../mdetr/mdetr-star_r101_roberta-base_4xb18-55e_refcoco+.py']

model = dict(aux_decoder=dict(decoder=_base_.model.decoder, head=_base_.model.bbox_head, queries='constant'))

initial_epochs = 35
round_epochs = 30
num_rounds = 5
max_epochs = initial_epochs + num_rounds * round_epochs
train_cfg = dict(max_epochs=max_epochs)

# Warm-up over the first 1% of the initial stage, then a constant learning rate (section 3.2; appendix B.3);
# SiRiHook rebuilds this schedule at every round start, stretched to the round's 30 epochs.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=0.01 * initial_epochs,
         convert_to_iter_based=True),
]

siri_hook = dict(
    type='SiRiHook', initial=initial_epochs, round_length=round_epochs, num_rounds=num_rounds, keep=('encoder', ),
    reinit='initial', reset_optimizer='all', metric='refexp/Prec@1', rule='greater')
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.0002, update_buffers=True, priority=49),
    siri_hook,
]
