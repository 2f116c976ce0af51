# The authors' text-assignment step before NLVR2 (models/model_nlvr_pretrain.py) as mmvlg's XVLMNLVRPretrain, the
# encoders of xvlm-nlvr_tiny.py, the ITC image projection 8 -> 8 (vision_proj) and the linear ta_head 16 -> 3.
_base_ = ['./xvlm-nlvr_tiny.py']
model = dict(
    type='XVLMNLVRPretrain',
    cls_head=None,
    itc_head=dict(type='ITCHead', embed_dims=8, temperature=0.07, temperature_range=(0.001, 0.5),
                  pooler=dict(type='DualStreamPooler', image_pooling='cls', tanh_pooler=False, pool_first=True)),
    ta_head=dict(type='Linear'),
    temperature=0.07)
