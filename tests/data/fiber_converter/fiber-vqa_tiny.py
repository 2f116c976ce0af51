# The release config of FIBER-B for VQA (576x576) with only its sizes reduced, matching
# fiber-vqa_tiny_authors.ckpt (see tests/test_tools/test_fiber_converter.py): as fiber-coarse_tiny.py at 128x128
# (window 4 = 128 / 32) with a classifier over 7 answers.
_base_ = ['../../../configs/fiber/fiber-vqa-release_swin-b_roberta-base_8xb64-10e_vqav2.py']
embed_dims = 24
model = dict(
    embed_dims=embed_dims,
    backbone=dict(
        visual=dict(pretrain_img_size=128, embed_dims=4, num_heads=(1, 1, 2, 2), window_size=4),
        language_model=dict(name_or_path='tests/data/fiber_converter/tiny-roberta')),
    vqa_head=dict(answers=['yes', 'no', '0', '1', '2', 'red', 'blue']))
