# The released SOHO pre-training config (configs/soho/soho-release_r18_bert-base-3l_8xb16-40e_coco-vg.py) with only
# its sizes reduced (tiny_sizes.py), matching soho-pre_tiny_authors.pth (see tests/test_tools/test_soho_converter.py):
# a 32-entry dictionary and BatchNorm in the neck (the release's SyncBN needs a process group).
_base_ = ['../../../configs/soho/soho-release_r18_bert-base-3l_8xb16-40e_coco-vg.py', './tiny_sizes.py']
model = dict(
    backbone=_base_.tiny_backbone,
    neck=dict(in_channels=32, norm_cfg=dict(type='BN'), dictionary=dict(num_entries=32)),
    language_model=_base_.tiny_language_model)
