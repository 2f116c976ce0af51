# The architecture of the authors' released fine-grained FIBER-B checkpoints (microsoft/FIBER fine_grained:
# fiber_refcoco.pth; the same model is in fiber_refcoco+.pth, fiber_refcocog.pth, fiber_coco.pth, fiber_lvis.pth,
# fiber_coarse_then_fine*.pth), for weights converted with
#   python tools/model_converters/fiber_to_mmvlg.py fiber_refcoco.pth fiber_refcoco.pth --source fine \
#       --config configs/fiber/fiber-release_swin-b_roberta-base_8xb2-20e_refcoco.py \
#       --cfg-options model.backbone.language_model.name_or_path=/path/to/roberta-base
# The RefCOCO config with the authors' input convention: BGR images normalized with the BGR means/stds of their
# configs (INPUT.PIXEL_MEAN [103.53, 116.28, 123.675], PIXEL_STD [57.375, 57.12, 58.395], TO_BGR255), where
# mmvlg's own configs feed RGB. No weights are read when the model is built (converted checkpoints provide all).
_base_ = ['./fiber_swin-b_roberta-base_8xb2-20e_refcoco.py']
model = dict(
    data_preprocessor=dict(mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395], bgr_to_rgb=False),
    backbone=dict(visual_checkpoint=None, language_model=dict(pretrained_weights=False)))
