# The "v2" release config of the fine-grained FIBER-B (COCO) with only its sizes reduced, matching
# fiber-coco_tiny_authors.pth (see tests/test_tools/test_fiber_converter.py); sizes as fiber-refcoco_tiny.py.
_base_ = ['../../../configs/fiber/fiber-release-v2_swin-b_roberta-base_16xb2-24e_coco.py']
model = dict(
    backbone=dict(
        visual=dict(pretrain_img_size=96, embed_dims=4, num_heads=(1, 1, 2, 2), window_size=3),
        language_model=dict(name_or_path='tests/data/fiber_converter/tiny-roberta')),
    neck=dict(in_channels=[8, 16, 32], out_channels=16),
    bbox_head=dict(in_channels=16, feat_channels=16, lang_dim=16, num_dyhead_blocks=2))
