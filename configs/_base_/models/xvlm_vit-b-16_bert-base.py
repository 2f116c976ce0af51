# X-VLM-base as in the paper (arXiv:2111.08276, sections 3.2 and 4.2): ViT-B/16 at 256 px initialized from DeiT-B,
# full attention in its first 8 blocks and mixed attention in the last 4 (each region a copy of its image's tokens
# whose attention keys are the [CLS] and the patches in its box; one full pass per image), and the released
# model's text, cross encoder and heads (xvlm_swin-b_bert-base.py). Pretrained weights by local path:
#   --cfg-options model.vision_encoder.pretrained=/path/to/deit_base_patch16_224-b5f2ef4d.pth \
#                 model.language_model.name_or_path=/path/to/bert-base-uncased
_base_ = ['./xvlm_swin-b_bert-base.py']
model = dict(
    vision_encoder=dict(_delete_=True, type='XVLMViT', img_size=256, patch_size=16, embed_dims=768, depth=12,
                        num_heads=12, local_attn_depth=4, drop_path_rate=0.1, pretrained=None))
