# Multi-task SiRi (arXiv:2207.13325, section 3.3 and appendix A) on SynthRef: the SynthRef MDETR* with an
# auxiliary decoder (own weights and head) fed with constant sine-cosine grid queries. The initial stage is
# shorter than single-decoder SiRi's (2 instead of 3 epochs, as 35 instead of 55 in the paper), then 2 rounds of
# 1 epoch that keep the encoder and re-initialize everything else, both decoders included. Drop the auxiliary
# decoder for deployment with tools/model_converters/strip_aux_decoder.py.
_base_ = ['../mdetr/mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py']

# grid_reference (SynthRef only, not in the paper): the auxiliary decoder predicts each box relative to its
# query's grid cell, as the main decoder predicts relative to its two-stage token. With absolute boxes the
# constant-query decoder hardly learns from scratch in this budget, and its large gradients slow down the shared
# encoder (configs/siri/README.md has the runs with and without; model.grid_reference=False gives the paper's).
model = dict(aux_decoder=dict(decoder=_base_.model.decoder, head=_base_.model.bbox_head, queries='constant'),
             grid_reference=True)

initial_epochs = 2
round_epochs = 1
num_rounds = 2
max_epochs = initial_epochs + num_rounds * round_epochs
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0, end=initial_epochs, T_max=initial_epochs,
         convert_to_iter_based=True),
]
siri_hook = dict(
    type='SiRiHook', initial=initial_epochs, round_length=round_epochs, num_rounds=num_rounds, keep=('encoder', ),
    reinit='initial', reset_optimizer='all', metric='refexp/Prec@1', rule='greater')
custom_hooks = [siri_hook]
