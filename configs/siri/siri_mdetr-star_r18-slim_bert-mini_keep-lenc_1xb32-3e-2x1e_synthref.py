# SiRi on SynthRef, Table 2 mode (e) of arXiv:2207.13325.
# Kept: L and E; V and D are re-initialized.
# V = ('backbone', 'neck'), L = ('language_model', 'text_proj'), E = ('encoder', ),
# D = ('decoder', 'bbox_head', 'token_grounding_head'). To retrain from the same
# initial model as the base config (as the paper does), resume from its round-0 checkpoint: see
# configs/siri/README.md.
_base_ = ['./siri_mdetr-star_r18-slim_bert-mini_1xb32-3e-2x1e_synthref.py']

custom_hooks = [
    dict(_base_.siri_hook, keep=('language_model', 'text_proj', 'encoder')),
]
