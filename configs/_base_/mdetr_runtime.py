# The runtime of MDETR's fine-tuning: keep the best checkpoint by Prec@1, and train with an exponential moving
# average of the weights (decay 0.9998, ashkamath/mdetr --ema), which is the model that is evaluated.
_base_ = ['./default_runtime.py']

default_hooks = dict(checkpoint=dict(save_best='refexp/Prec@1', rule='greater'))
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.0002, update_buffers=True, priority=49),
]
