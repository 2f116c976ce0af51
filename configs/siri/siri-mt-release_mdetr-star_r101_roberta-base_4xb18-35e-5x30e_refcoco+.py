# Multi-task SiRi on refcoco+ with the architecture of the authors' released checkpoint (qumengxue/siri-vg,
# `--cascade_num 2`; the authors report Prec@1 val 77.47, testA 83.04, testB 67.11): https://drive.google.com/file/d/1ItHWyHYogxcE3sBwrjLDeF8b24lfuBbQ/view
# The same model and schedule as siri-mt_mdetr-star_r101_roberta-base_4xb18-35e-5x30e_refcoco+.py, except for what
# the released code does differently:
# - the second decoder's constant queries are the released code's (`make_all_points_gaussian`: a 4x4 grid at
#   20/40/60/80 of 100, through a sigmoid, 128 sine-cosine features per coordinate) followed by a learnable
#   LayerNorm (`pos_trans_norm` -> `aux_query_norm`): queries='siri';
# - the authors' model predicts with the second decoder (its output is the last of the cascade): predict_with='aux'.
# Convert with tools/model_converters/mdetr_to_mmvlg.py --source siri --use-ema --config THIS.
_base_ = ['./siri-mt_mdetr-star_r101_roberta-base_4xb18-35e-5x30e_refcoco+.py']
model = dict(aux_decoder=dict(queries='siri'), predict_with='aux')
