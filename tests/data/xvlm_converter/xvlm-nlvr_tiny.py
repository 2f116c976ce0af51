# The authors' NLVR2 model (models/model_nlvr.py) as mmvlg's XVLMNLVR with only its sizes reduced, matching
# xvlm-nlvr_tiny_authors.pth (see tests/test_tools/test_xvlm_converter.py): the DeiT ViT of xvlm-vit_tiny.py (64 px,
# patch 16, width 8, 4 blocks); a 4-layer, 16-wide BERT whose 2 cross layers (2-3) are duplicated per image (layers
# 2-5, key/value shared by each pair); the classifier MLP 16 -> 32 -> 2.
_base_ = ['./xvlm-vit_tiny.py']
model = dict(
    _delete_=True,
    type='XVLMNLVR',
    data_preprocessor=_base_.model.data_preprocessor,
    vision_encoder=_base_.model.vision_encoder,
    language_model=dict(
        _base_.model.language_model,
        model_config=dict(_base_.model.language_model.model_config, num_hidden_layers=4),
        cross_attention=dict(start=2, num_contexts=2)),
    cls_head=dict(type='MLPBlock', hidden_dims=32))
