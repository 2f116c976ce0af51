# The release config of the coarse-grained FIBER-B (384x384) with only its sizes reduced, matching
# fiber-pretrain_tiny_authors.ckpt (see tests/test_tools/test_fiber_converter.py): Swin depths (2, 2, 18, 2) as
# Swin-B, widths 4-32, window 3 (= 96 / 32), 12-layer 16-wide RoBERTa, fusion in the top 6 layers, heads 24 wide.
_base_ = ['../../../configs/fiber/fiber-coarse-release_swin-b_roberta-base_64xb64-100k_coco-vg-sbu-cc.py']
embed_dims = 24
model = dict(
    embed_dims=embed_dims,
    backbone=dict(
        visual=dict(pretrain_img_size=96, embed_dims=4, num_heads=(1, 1, 2, 2), window_size=3),
        language_model=dict(name_or_path='tests/data/fiber_converter/tiny-roberta')),
    itc_head=dict(embed_dims=embed_dims))
