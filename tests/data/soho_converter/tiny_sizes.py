# The reduced sizes of the tiny authors' checkpoints (see tests/test_tools/test_soho_converter.py), shared by
# soho-pre_tiny.py and soho-vqa_tiny.py: ResNet-18 of stem and base width 4 with layer4 at stride 1 (C5: 32
# channels), a 3-layer, 16-wide BERT over a 31-token word vocabulary.
vocab = ['a', 'the', 'red', 'blue', 'green', 'small', 'big', 'circle', 'square', 'triangle', 'left', 'right', 'of',
         'above', 'below', 'and', 'next', 'to', 'what', 'color', 'is', 'how', 'many', 'two', 'triangles', 'squares']
width = 16
tiny_backbone = dict(stem_channels=4, base_channels=4, strides=(1, 2, 2, 1), with_cp=False, init_cfg=None)
tiny_language_model = dict(
    _delete_=True, type='HFTextEncoder', max_length=40, tokenizer=dict(type='word', vocab=vocab),
    model_config=dict(model_type='bert', hidden_size=width, num_hidden_layers=3, num_attention_heads=2,
                      intermediate_size=2 * width, max_position_embeddings=64))
