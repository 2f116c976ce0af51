# The encoders of SOHO's tiny downstream configs (configs/soho/soho-{vqa,nlvr2,ve}_r18-tiny_bert-tiny_*): the tiny
# pre-training's sizes (soho_r18-tiny_bert-tiny_1xb16-2k_synthref-captions.py: ResNet-18 of base width 16, layer4 at
# stride 1, the neck's 2x2 max-pool -> 4x4 visual tokens; 3-layer, 64-wide BERT) with the dictionary skipped (the
# transformer reads the dictionary's input features, as the paper and the released VQA neck). A config adds the
# model type, its head, `language_model.tokenizer.vocab` and `max_length`. The word embeddings of a tiny
# pre-training checkpoint (load_from) map from the captions' vocabulary by word (checkpoint_vocab).
_base_ = ['../datasets/synthref_captions_vocab.py']
width = 64
model = dict(
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(
        type='mmdet.ResNet', depth=18, base_channels=16, strides=(1, 2, 2, 1), out_indices=(3, ), frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch', init_cfg=None),
    # the pre-training's neck without its dictionary (and so without its gate and entry projection)
    neck=dict(type='SOHONeck', in_channels=128, dictionary=None, pool=True, norm_cfg=dict(type='BN')),
    language_model=dict(
        type='HFTextEncoder',
        model_config=dict(model_type='bert', hidden_size=width, num_hidden_layers=3, num_attention_heads=2,
                          intermediate_size=2 * width),
        tokenizer=dict(type='word'),
        checkpoint_vocab=_base_.caption_vocab))  # the tiny pre-training's
