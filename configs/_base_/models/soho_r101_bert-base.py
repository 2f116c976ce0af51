# The encoders of SOHO's paper-scale downstream configs (configs/soho/soho-{retrieval,nlvr2,ve}_r101_bert-base_*):
# the paper's pre-training model (configs/soho/soho_r101_bert-base_32xb128-40e_coco-vg.py: ResNet-101 C5, stem +
# layer1 frozen, BatchNorm statistics frozen; the neck's 2x2 max-pool and 1x1 conv to 768; 12-layer BERT-base, 40
# text tokens) with the dictionary skipped (the downstream tasks read the dictionary's input features, the paper's
# section 4.2; a pre-training checkpoint's dictionary, gate and entry projection are then unexpected keys). The
# weights come from that pre-training checkpoint (load_from), so nothing is initialized from ImageNet here; BERT's
# tokenizer and layout by name or local path (model.language_model.name_or_path). A config adds the model type and
# its head.
model = dict(
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='mmdet.ResNet', depth=101, out_indices=(3, ), frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True, style='pytorch', init_cfg=None),
    neck=dict(type='SOHONeck', in_channels=2048, dictionary=None, fusion='gate', project_entries=True, pool=True),
    language_model=dict(type='HFTextEncoder', name_or_path='bert-base-uncased', max_length=40))
# the pre-training's input size: shorter side 600, longer side at most 1000
soho_pipeline = [dict(type='LoadImageFromFile'), dict(type='mmdet.Resize', scale=(1000, 600), keep_ratio=True),
                 dict(type='PackImageTextInputs')]
# a pre-training checkpoint's parts that no downstream model has
soho_pretrain_unexpected = [r'^(mlm_head|itm_head)\.', r'^neck\.(dictionary|entry_proj|gate)\.']
