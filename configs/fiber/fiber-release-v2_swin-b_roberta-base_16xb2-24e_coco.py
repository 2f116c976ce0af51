# The architecture of the authors' released fine-grained FIBER-B checkpoints built with their "v2" fusion
# (microsoft/FIBER fine_grained configs with BACKBONE.FUSION_VERSION "v2": fiber_coco.pth, fiber_lvis.pth and the
# fine-grained pre-training fiber_coarse_then_fine*.pth), for weights converted with
#   python tools/model_converters/fiber_to_mmvlg.py fiber_coco.pth fiber_coco_mmvlg.pth --source fine \
#       --config configs/fiber/fiber-release-v2_swin-b_roberta-base_16xb2-24e_coco.py \
#       --cfg-options model.backbone.language_model.name_or_path=/path/to/roberta-base
# The COCO config with the authors' input convention (BGR images, their BGR means/stds; see
# fiber-release_swin-b_roberta-base_8xb2-20e_refcoco.py) and the "v2" image-to-text attention, whose queries are not
# normalized (no norm_i2t_i; the "v3" fusion of their RefCOCO models has it). For LVIS or zero-shot evaluation,
# the same model settings on the LVIS / other configs.
_base_ = ['./fiber_swin-b_roberta-base_16xb2-24e_coco.py']
model = dict(
    data_preprocessor=dict(mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395], bgr_to_rgb=False),
    backbone=dict(visual_checkpoint=None, language_model=dict(pretrained_weights=False), i2t_query_norm=False))
