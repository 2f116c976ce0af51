# The released X-VLM model (Swin-B + BERT, configs/_base_/models/xvlm_swin-b_bert-base.py) with only its sizes
# reduced, matching xvlm-swin_tiny_authors.pth (see tests/test_tools/test_xvlm_converter.py): Swin widths 4-32,
# depths (2, 2, 2, 2), 64 px, window 2 (the last stage is one window, as Swin-B's 7x7 at 224 px); a 12-layer,
# 16-wide BERT with cross-attention from layer 6 over a 26-token word vocabulary; ITC 8-d, MLP heads 32 wide.
_base_ = ['../../../configs/_base_/models/xvlm_swin-b_bert-base.py']
vocab = ['a', 'the', 'red', 'blue', 'green', 'yellow', 'small', 'big', 'circle', 'square', 'triangle', 'triangles',
         'two', 'left', 'right', 'of', 'above', 'below', 'and', 'next', 'to']
width = 16
model = dict(
    vision_encoder=dict(img_size=64, embed_dims=4, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2), window_size=2),
    language_model=dict(
        _delete_=True, type='HFTextEncoder', max_length=40, tokenizer=dict(type='word', vocab=vocab),
        model_config=dict(model_type='bert', hidden_size=width, num_hidden_layers=12, num_attention_heads=2,
                          intermediate_size=2 * width, max_position_embeddings=64),
        cross_attention=dict(start=6)),
    itc_head=dict(embed_dims=8),
    itm_head=dict(hidden_dims=2 * width),
    bbox_head=dict(mlp=dict(hidden_dims=2 * width)))
