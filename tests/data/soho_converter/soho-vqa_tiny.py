# SOHO VQA as the authors released it (their configs/VQA/soho_res18_vqa.py: the pre-training's backbone and BERT, the
# neck without dictionary, the MLP head Linear(C, 4C) - ReLU - Dropout(0.5) - Linear(4C, #answers)), with the sizes
# of soho-pre_tiny.py and 7 answers, matching soho-vqa_tiny_authors.pth (see tests/test_tools/test_soho_converter.py).
_base_ = ['./soho-pre_tiny.py']
model = dict(
    _delete_=True, type='SOHOVQA',
    data_preprocessor=_base_.model.data_preprocessor,
    backbone=_base_.model.backbone,
    neck=dict(type='SOHONeck', in_channels=32, dictionary=None, pool=True, norm_cfg=dict(type='BN')),
    language_model=_base_.model.language_model,
    vqa_head=dict(type='SOHOVQAHead', answers=['yes', 'no', '0', '1', '2', 'red', 'blue'], dropout=0.5))
