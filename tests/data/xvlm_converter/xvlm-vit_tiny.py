# X-VLM with the paper's DeiT ViT (configs/_base_/models/xvlm_vit-b-16_bert-base.py) as the authors' retrieval
# model (ITC and ITM heads only), with only its sizes reduced, matching xvlm-vit_tiny_authors.pth (see
# tests/test_tools/test_xvlm_converter.py): 64 px, patch 16, width 8, 4 blocks (2 heads), mixed attention in the
# last 2; the text encoder of xvlm-swin_tiny.py.
_base_ = ['./xvlm-swin_tiny.py']
model = dict(
    vision_encoder=dict(_delete_=True, type='XVLMViT', img_size=64, patch_size=16, embed_dims=8, depth=4,
                        num_heads=2, local_attn_depth=2),
    mlm_head=None,
    bbox_head=None)
