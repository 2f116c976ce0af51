# The release config of the fine-grained FIBER-B (RefCOCO) with only its sizes reduced, matching
# fiber-refcoco_tiny_authors.pth (see tests/test_tools/test_fiber_converter.py): Swin depths (2, 2, 18, 2) as
# Swin-B, widths 4-32, window 3, 12-layer 16-wide RoBERTa, fusion in the top 6 layers, FPN and head 16 wide,
# 2 DyHead blocks.
_base_ = ['../../../configs/fiber/fiber-release_swin-b_roberta-base_8xb2-20e_refcoco.py']
model = dict(
    backbone=dict(
        visual=dict(pretrain_img_size=96, embed_dims=4, num_heads=(1, 1, 2, 2), window_size=3),
        language_model=dict(name_or_path='tests/data/fiber_converter/tiny-roberta')),
    neck=dict(in_channels=[8, 16, 32], out_channels=16),
    bbox_head=dict(in_channels=16, feat_channels=16, lang_dim=16, num_dyhead_blocks=2))
