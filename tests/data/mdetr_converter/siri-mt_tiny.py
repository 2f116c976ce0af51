# The released multi-task SiRi RefCOCO config with only its sizes reduced, matching siri-mt_tiny_authors.pth (see
# tests/test_tools/test_mdetr_converter.py); as siri_tiny.py plus the second decoder.
_base_ = ['../../../configs/siri/siri-mt-release_mdetr-star_r101_roberta-base_4xb18-35e-5x30e_refcoco.py']
layer_cfg = dict(embed_dims=32, num_heads=4, feedforward_channels=64, dropout=0.1)
model = dict(
    backbone=dict(depth=50, base_channels=2, init_cfg=None),
    neck=dict(in_channels=(16, 64), out_channels=32),
    language_model=dict(name_or_path='tests/data/mdetr_converter/tiny-roberta', pretrained_weights=False),
    positional_encoding=dict(num_feats=16),
    encoder=dict(num_layers=2, layer_cfg=layer_cfg),
    decoder=dict(num_layers=2, layer_cfg=layer_cfg),
    bbox_head=dict(embed_dims=32),
    aux_decoder=dict(decoder=dict(num_layers=2, layer_cfg=layer_cfg), head=dict(embed_dims=32)))
