# SiRi (arXiv:2207.13325) on SynthRef, the CPU-sized counterpart of the RefCOCO configs: the initial stage is
# the SynthRef MDETR* config (3 epochs, its schedule), followed by 2 retraining rounds of 1 epoch (rounds are
# shorter than the initial stage, as 30 vs 55 epochs in the paper). At the start of every round SiRiHook keeps
# the vision-language encoder and re-initializes everything else to its initial values, resets the optimizer
# and restarts the schedule, scaled to the round's length (warm-up 67 iterations, cosine over 1 epoch). The
# variants *_keep-*_1xb32-3e-2x1e_synthref.py keep other modules (the paper's Table 2); *_synthref-*pct.py train
# on a fraction of the training set (section 4.6).
_base_ = ['../mdetr/mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py']

initial_epochs = 3
round_epochs = 1
num_rounds = 2
max_epochs = initial_epochs + num_rounds * round_epochs
train_cfg = dict(max_epochs=max_epochs)

# The SynthRef config's schedule, for the initial stage.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0, end=initial_epochs, T_max=initial_epochs,
         convert_to_iter_based=True),
]

# Module names of the SynthRef MDETR* (the paper's Table 2): visual backbone V = ('backbone', 'neck'), language
# backbone L = ('language_model', 'text_proj'), encoder E = ('encoder', ), decoder D = ('decoder', 'bbox_head',
# 'token_grounding_head'): its queries come from the scored encoder tokens, there is no query_embedding.
# SiRi keeps E.
siri_hook = dict(
    type='SiRiHook', initial=initial_epochs, round_length=round_epochs, num_rounds=num_rounds, keep=('encoder', ),
    reinit='initial', reset_optimizer='all', metric='refexp/Prec@1', rule='greater')
custom_hooks = [siri_hook]
