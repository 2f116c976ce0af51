# The architecture of the authors' released coarse-grained FIBER-B checkpoints at 384x384 (microsoft/FIBER
# coarse_grained: fiber_pretrain.ckpt with its ITC, ITM and MLM heads), for weights converted with
#   python tools/model_converters/fiber_to_mmvlg.py fiber_pretrain.ckpt fiber-coarse_pretrain.pth --source coarse \
#       --config configs/fiber/fiber-coarse-release_swin-b_roberta-base_64xb64-100k_coco-vg-sbu-cc.py \
#       --cfg-options model.backbone.language_model.name_or_path=/path/to/roberta-base
# The pre-training config with the three computations of the authors' code that differ from mmvlg's defaults:
# with fusion, the last RoBERTa layer has no output LayerNorm and the last Swin stage is read without its output
# LayerNorm; the last stage (12x12 tokens, window 12 = image_size / 32) does not shift its window. Images are
# resized to 384x384 with bicubic interpolation and normalized with ImageNet's mean/std, as the authors' ALBEF
# transform. No weights are read when the model is built (converted checkpoints provide all of them).
_base_ = ['./fiber-coarse_swin-b_roberta-base_64xb64-100k_coco-vg-sbu-cc.py']
model = dict(
    backbone=dict(
        visual_checkpoint=None,
        language_model=dict(pretrained_weights=False),
        fused_last_text_norm=False,
        fused_visual_out_norm=False,
        shift_single_window=False))
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='mmdet.Resize', scale=(384, 384), keep_ratio=False, interpolation='bicubic'),
    dict(type='PackImageTextInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
