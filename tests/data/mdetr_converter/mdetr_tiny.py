# The released MDETR ResNet-101 config with only its sizes reduced, matching mdetr_tiny_authors.pth (see
# tests/test_tools/test_mdetr_converter.py): ResNet-18 layout with widths 4-32, width 32, 2+2 layers, 5 queries.
_base_ = ['../../../configs/mdetr/mdetr_r101_roberta-base_2xb4-5e_refcoco.py']
layer_cfg = dict(embed_dims=32, num_heads=4, feedforward_channels=64, dropout=0.1)
model = dict(
    num_queries=5,
    backbone=dict(depth=18, base_channels=4, init_cfg=None),
    neck=dict(in_channels=(32, ), out_channels=32),
    language_model=dict(name_or_path='tests/data/mdetr_converter/tiny-roberta', pretrained_weights=False),
    positional_encoding=dict(num_feats=16),
    encoder=dict(num_layers=2, layer_cfg=layer_cfg),
    decoder=dict(num_layers=2, layer_cfg=layer_cfg),
    bbox_head=dict(embed_dims=32, contrastive_align=dict(embed_dims=16, text_dims=32)))
