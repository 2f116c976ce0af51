# FIBER's coarse-grained model (arXiv:2206.07643, sections 3.1-3.2): Swin-B (window 12, ImageNet-22k 384) and
# RoBERTa-base with gated cross-attention in their top 6 layers; the heads read the last Swin stage (1024-wide
# tokens) and the RoBERTa tokens: ITC with fusion off (768-d embeddings, learnable temperature 0.07), ITM with
# fusion on and hard negatives from the ITC similarities, MLM (15% of the tokens, 80/10/10) on the fused text.
# Pretrained weights by local path:
#   --cfg-options model.backbone.visual_checkpoint=/path/to/swin_base_patch4_window12_384_22k.pth \
#                 model.backbone.language_model.name_or_path=/path/to/roberta-base
model = dict(
    type='FIBERCoarse',
    embed_dims=768,
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='FIBERBackbone',
        num_fusion_layers=6,
        visual=dict(
            type='mmdet.SwinTransformer', pretrain_img_size=384, embed_dims=128, depths=(2, 2, 18, 2),
            num_heads=(4, 8, 16, 32), window_size=12, mlp_ratio=4, drop_path_rate=0.2, patch_norm=True,
            out_indices=(3, ), with_cp=False),
        visual_checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
        'swin_base_patch4_window12_384_22k.pth',
        # the authors' max_text_len is 40 for pre-training (50 for fine-tuning)
        language_model=dict(type='HFTextEncoder', name_or_path='roberta-base', max_length=40),
        with_cp=False),
    itc_head=dict(type='ITCHead', embed_dims=768, temperature=0.07, loss_weight=1.0),
    itm_head=dict(type='ITMHead', loss_weight=1.0),
    mlm_head=dict(type='MLMHead', loss_weight=1.0),
    mlm_cfg=dict(mask_prob=0.15, replace_prob=0.8, random_prob=0.1),
    # retrieval evaluation: dual encoder, ITM re-ranking of the top-k (k=0: dual encoder only; the paper's
    # Table 4 re-ranks the top 10 or more)
    rerank_cfg=dict(k=0, itm_weight=1.0, batch_size=64))
