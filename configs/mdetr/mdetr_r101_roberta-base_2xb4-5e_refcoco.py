# MDETR ResNet-101 on refcoco: the architecture of the authors' released checkpoints (ashkamath/mdetr),
# MDETR's test-time resize (shorter side 800, longer side at most 1333) and RefCOCO fine-tuning schedule.
# Fine-tuned checkpoint (the authors report Prec@1 val 86.75, testA 89.58, testB 81.41):
#   https://zenodo.org/record/4721981/files/refcoco_resnet101_checkpoint.pth
# Pre-trained checkpoint (start of the fine-tuning, load_from): https://zenodo.org/record/4721981/files/pretrained_resnet101_checkpoint.pth
#   (pre-trained only, the authors report RefCOCO / RefCOCO+ / RefCOCOg val Prec@1 72.1 / 58.0 / 55.7).
# Convert either with tools/model_converters/mdetr_to_mmvlg.py --source mdetr --use-ema --config THIS.
_base_ = [
    '../_base_/models/mdetr_r101_roberta-base.py', '../_base_/datasets/refcoco_mdetr.py',
    '../_base_/schedules/mdetr_finetune_5e.py', '../_base_/mdetr_runtime.py'
]
