# MDETR EfficientNet-B5 on refcoco: the architecture of the authors' released checkpoints (ashkamath/mdetr),
# MDETR's test-time resize (shorter side 800, longer side at most 1333) and RefCOCO fine-tuning schedule.
# Pre-trained checkpoint (start of the fine-tuning, load_from): https://zenodo.org/record/4721981/files/pretrained_EB5_checkpoint.pth
#   (pre-trained only, the authors report RefCOCO / RefCOCO+ / RefCOCOg val Prec@1 73.4 / 58.8 / 57.1).
# Convert either with tools/model_converters/mdetr_to_mmvlg.py --source mdetr --use-ema --config THIS.
_base_ = [
    '../_base_/models/mdetr_enb3_roberta-base.py', '../_base_/datasets/refcoco_mdetr.py',
    '../_base_/schedules/mdetr_finetune_5e.py', '../_base_/mdetr_runtime.py'
]
# EfficientNet-B5 (`--backbone timm_tf_efficientnet_b5_ns`): last stage of 512 channels.
model = dict(backbone=dict(model_name='tf_efficientnet_b5_ns'), neck=dict(in_channels=(512, )))
