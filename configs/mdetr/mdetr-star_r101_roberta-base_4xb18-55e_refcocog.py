# SiRi's MDETR* on refcocog (arXiv:2207.13325, section 3.1 and 4.2): ResNet-101 with SiRi's low-level fusion,
# RoBERTa-base, 6+6 layers, 16 queries, 2 soft tokens, max side 640, batch 72 on 4 GPUs (4x18),
# AdamW lr 5e-5 (text encoder 1e-5), warm-up, gradient clipping 0.1, 55 epochs.
# Pretrained weights by local path or hub name, e.g.
#   --cfg-options model.language_model.name_or_path=/path/to/roberta-base \
#                 model.backbone.init_cfg.checkpoint=/path/to/resnet101.pth
_base_ = [
    '../_base_/models/mdetr-star_r101_roberta-base.py', '../_base_/datasets/refcocog.py',
    '../_base_/schedules/siri_55e.py', '../_base_/default_runtime.py'
]
default_hooks = dict(checkpoint=dict(save_best='refexp/Prec@1', rule='greater'))
# The authors train with an EMA of the weights (decay 0.9998) and evaluate the EMA model.
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.0002, update_buffers=True, priority=49),
]
