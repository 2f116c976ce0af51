# The authors' VQA model (models/model_vqa.py) as mmvlg's XVLMVQA with only its sizes reduced, matching
# xvlm-vqa_tiny_authors.pth (see tests/test_tools/test_xvlm_converter.py): the DeiT ViT of xvlm-vit_tiny.py (64 px,
# patch 16, width 8, 4 blocks); a 4-layer, 16-wide BERT with cross-attention from layer 2 (text encoder layers 0-1,
# cross encoder 2-3); a 2-layer answer decoder (the cross encoder's depth); the released answer suffix '[SEP]'.
_base_ = ['./xvlm-vit_tiny.py']
model = dict(
    _delete_=True,
    type='XVLMVQA',
    data_preprocessor=_base_.model.data_preprocessor,
    vision_encoder=_base_.model.vision_encoder,
    language_model=dict(
        _base_.model.language_model,
        model_config=dict(_base_.model.language_model.model_config, num_hidden_layers=4),
        cross_attention=dict(start=2)),
    answer_list=['red', 'blue', 'two', 'small red circle', 'big square', 'green triangles', 'yellow'],
    answer_head=dict(type='AnswerGenerationHead', num_layers=2, add_first_token=True),
    k_test=4,
    answer_weight='count',
    answer_suffix='[SEP]')
