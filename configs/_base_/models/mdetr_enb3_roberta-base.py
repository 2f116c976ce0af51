# MDETR with an EfficientNet-B3 backbone as the authors release it (`--backbone timm_tf_efficientnet_b3_ns`):
# timm's features-only tf_efficientnet_b3_ns, last stage (384 channels, stride 32), every BatchNorm replaced by
# MDETR's FrozenBatchNorm2d (epsilon 1e-5, not timm's 1e-3). The rest as the ResNet-101 model.
_base_ = ['./mdetr_r101_roberta-base.py']
model = dict(
    backbone=dict(_delete_=True, type='TimmBackbone', model_name='tf_efficientnet_b3_ns', out_indices=(4, ),
                  norm_eval=True, norm_eps=1e-5, freeze_norm=True),
    neck=dict(in_channels=(384, )))
