# SOHO's ablation setting (the paper's section 4.3): ResNet-18 and a 3-layer Transformer (BERT-base's first 3
# layers), everything else as the R-101 pre-training (soho_r101_bert-base_32xb128-40e_coco-vg.py).
_base_ = ['./soho_r101_bert-base_32xb128-40e_coco-vg.py']
model = dict(
    backbone=dict(depth=18, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=512),
    language_model=dict(model_kwargs=dict(num_hidden_layers=3)))
