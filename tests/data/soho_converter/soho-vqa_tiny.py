# The released SOHO VQA config (configs/soho/soho-release-vqa_r18_bert-base-3l_8xb32-20e_vqav2.py) with only its
# sizes reduced (tiny_sizes.py; 7 answers, the head 4 x 16 wide), matching soho-vqa_tiny_authors.pth (see
# tests/test_tools/test_soho_converter.py).
_base_ = ['../../../configs/soho/soho-release-vqa_r18_bert-base-3l_8xb32-20e_vqav2.py', './tiny_sizes.py']
model = dict(
    backbone=_base_.tiny_backbone,
    neck=dict(in_channels=32, norm_cfg=dict(type='BN')),
    language_model=_base_.tiny_language_model,
    vqa_head=dict(answers=['yes', 'no', '0', '1', '2', 'red', 'blue'], hidden_dims=4 * 16))
