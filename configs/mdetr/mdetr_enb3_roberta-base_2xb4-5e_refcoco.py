# MDETR EfficientNet-B3 on refcoco: the architecture of the authors' released checkpoints (ashkamath/mdetr),
# MDETR's test-time resize (shorter side 800, longer side at most 1333) and RefCOCO fine-tuning schedule.
# Fine-tuned checkpoint (the authors report Prec@1 val 87.51, testA 90.40, testB 82.67):
#   https://zenodo.org/record/4721981/files/refcoco_EB3_checkpoint.pth
# Pre-trained checkpoint (start of the fine-tuning, load_from): https://zenodo.org/record/4721981/files/pretrained_EB3_checkpoint.pth
#   (pre-trained only, the authors report RefCOCO / RefCOCO+ / RefCOCOg val Prec@1 70.2 / 56.7 / 53.8).
# Convert either with tools/model_converters/mdetr_to_mmvlg.py --source mdetr --use-ema --config THIS.
_base_ = [
    '../_base_/models/mdetr_enb3_roberta-base.py', '../_base_/datasets/refcoco_mdetr.py',
    '../_base_/schedules/mdetr_finetune_5e.py', '../_base_/mdetr_runtime.py'
]
