# MDETR* on SynthRef, the embedded default that trains on 2 CPU cores in under 30 minutes.
# Same architecture family as the RefCOCO configs, scaled down (see configs/mdetr/README.md for why):
# the first three stages of a half-width ResNet-18 trained from scratch (stride 16, 8x8 tokens for 128x128
# images), SiRi's low-level fusion of layer2 into the last stage, a 2-layer BERT of width 128 over
# SynthRef's vocabulary, 3+3 transformer layers of width 128, 16 queries, 2 soft tokens; plus a dense
# grounding loss on the encoder's image tokens and two-stage queries from the best-scored tokens (not in
# MDETR/SiRi; without them this model learns far too slowly for a 30-minute CPU run, see the README).
_base_ = [
    '../_base_/models/mdetr-star_r101_roberta-base.py', '../_base_/datasets/synthref.py',
    '../_base_/schedules/siri_55e.py', '../_base_/default_runtime.py'
]
embed_dims = 128
model = dict(
    backbone=dict(
        depth=18, base_channels=32, num_stages=3, out_indices=(1, 2), strides=(1, 2, 2), dilations=(1, 1, 1),
        frozen_stages=-1,  # from scratch: every stage trains
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, init_cfg=None),
    neck=dict(in_channels=(64, 128), mid_channels=128, out_channels=embed_dims, strides=(2, 1)),
    language_model=dict(
        _delete_=True, type='HFTextEncoder', max_length=32,
        model_config=dict(model_type='bert', hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=512),
        tokenizer=dict(type='word', vocab='synthref')),
    positional_encoding=dict(num_feats=embed_dims // 2),
    encoder=dict(num_layers=3, layer_cfg=dict(embed_dims=embed_dims, num_heads=8, feedforward_channels=512,
                                              dropout=0.0)),
    decoder=dict(num_layers=3, layer_cfg=dict(embed_dims=embed_dims, num_heads=8, feedforward_channels=512,
                                              dropout=0.0)),
    bbox_head=dict(embed_dims=embed_dims),
    # Not in MDETR/SiRi (see configs/mdetr/README.md): a dense grounding loss on the encoder's image tokens
    # and two-stage queries taken from the best-scored tokens, for a from-scratch model to learn within the
    # CPU budget. Training-only loss + query selection; the reference RefCOCO configs do not use them.
    token_grounding_head=dict(type='TokenGroundingHead', embed_dims=embed_dims, loss_weight=1.0),
    token_queries=dict(box_size=0.25))

max_epochs = 3
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
# From scratch, the text encoder is not slowed down (the reference configs train RoBERTa at 0.2x), so no
# paramwise_cfg: with one, mmengine makes a parameter group per parameter and AdamW steps them one by one.
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
                     clip_grad=dict(max_norm=1.0, norm_type=2))
# lr 2e-4 is set for this batch (1 x 32), not the SiRi RefCOCO schedule's 72: --auto-scale-lr scales from it.
auto_scale_lr = dict(enable=False, base_batch_size=32)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs,
         convert_to_iter_based=True),
]
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=1, save_best='refexp/Prec@1',
                                                               rule='greater'))
