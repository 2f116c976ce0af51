# X-VLM-base as released (arXiv:2111.08276; the authors' Pretrain_XVLM_base_4m/16m.yaml): Swin-B (224 px, window 7,
# 1024-wide last stage; a region is the box-mask-weighted mean of the last-stage tokens), BERT-base: layers 0-5 the
# text encoder, layers 6-11 the cross encoder with fresh cross-attention to the image tokens, all from one BERT
# folder; ITC on the [CLS] of both (256-d, temperature 0.07 clamped to [0.001, 0.5]), ITM on the fused [CLS]
# (MLP, hard negatives), MLM (the released rule: 25% of the tokens, at most 8, whole words, 20% spans of 2-3, 80/10/10;
# the head starts from BERT's and is tied to the word embeddings), box head (MLP, sigmoid cx, cy, w, h, L1 + GIoU,
# whole-image regions left out as calc_image_bbox_loss: False). Pretrained weights by local path:
#   --cfg-options model.vision_encoder.pretrained=/path/to/swin_base_patch4_window7_224_22k.pth \
#                 model.language_model.name_or_path=/path/to/bert-base-uncased
width = 768
model = dict(
    type='XVLM',
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', bgr_to_rgb=True,
        # the authors' normalization (CLIP's statistics), in 0-255
        mean=[122.7709, 116.7460, 104.0937], std=[68.5005, 66.6322, 70.3232]),
    vision_encoder=dict(type='XVLMSwin', img_size=224, embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32),
                        window_size=7, drop_path_rate=0.1, pretrained=None),
    # max_tokens 40 in the released configs (the paper: 25)
    language_model=dict(type='HFTextEncoder', name_or_path='bert-base-uncased', max_length=40,
                        cross_attention=dict(start=6)),
    itc_head=dict(type='ITCHead', embed_dims=256, temperature=0.07, temperature_range=(0.001, 0.5),
                  pooler=dict(type='DualStreamPooler', image_pooling='cls', tanh_pooler=False, pool_first=True)),
    itm_head=dict(type='ITMHead', hidden_dims=2 * width),
    mlm_head=dict(type='MLMHead', tie_word_embeddings=True,
                  # the paper's rule instead: dict(rule='bernoulli', mask_prob=0.25, replace_prob=0.8, random_prob=0.1)
                  masking=dict(rule='count', mask_prob=0.25, max_masks=8, span_prob=0.2, max_span=3, whole_word=True,
                               replace_prob=0.8, random_prob=0.1)),
    bbox_head=dict(type='BoxRegressionHead', mlp=dict(type='MLPBlock', hidden_dims=2 * width),
                   loss_bbox=dict(type='mmdet.L1Loss', loss_weight=1.0),
                   loss_iou=dict(type='mmdet.GIoULoss', loss_weight=1.0)),
    region_loss_weight=1.0,
    bbox_on_whole_image=False,  # the paper's footnote 2 trains on whole-image boxes (0.5, 0.5, 1, 1) too: True
    mlm_head_from_text_encoder=True,
    # retrieval: ITC top-k re-scored and ranked by the ITM logit (k_test 256 in Retrieval_coco.yaml, 128 in
    # Retrieval_flickr.yaml)
    rerank_cfg=dict(k=256, itm_weight=1.0, add_similarity=False, batch_size=64))

# The authors' optimizer: AdamW (betas 0.9, 0.98, eps 1e-8), lr 1e-4, weight decay 0.01 (none on biases and
# norms), and lr_mult 2 for what starts fresh: the cross-attention blocks, the ITC projections and temperature, the
# ITM and box heads (the MLM head starts from BERT's: 1x). (With a custom key, MMEngine applies that key's
# decay_mult instead of the bias/norm rule, so the biases and norms of those modules keep weight decay.)
fresh = dict(lr_mult=2.0)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0,
        bypass_duplicate=True,  # the MLM decoder is the word embedding matrix (tied): one parameter, one group
        custom_keys={'language_model.cross_attns': fresh, 'itc_head.proj': fresh,
                     'itc_head.temperature': dict(lr_mult=2.0, decay_mult=0.0), 'itm_head': fresh,
                     'bbox_head': fresh}))
