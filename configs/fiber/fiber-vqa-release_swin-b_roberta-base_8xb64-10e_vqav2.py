# The architecture of the authors' released FIBER-B VQA v2 checkpoint (microsoft/FIBER coarse_grained:
# fiber_vqa.ckpt; the paper's Table 3: test-dev 78.55, test-std 78.46), for weights converted with
#   python tools/model_converters/fiber_to_mmvlg.py fiber_vqa.ckpt fiber-vqa.pth --source coarse \
#       --config configs/fiber/fiber-vqa-release_swin-b_roberta-base_8xb64-10e_vqav2.py \
#       --cfg-options model.backbone.language_model.name_or_path=/path/to/roberta-base
# The VQA config at the authors' fine-tuning resolution: 576x576 images, so the Swin window is 18 (the authors'
# window is image_size / 32; their fine-tuning resizes the 12x12 relative-position tables to 35x35), and the
# three computations of the authors' coarse-grained code (see
# fiber-coarse-release_swin-b_roberta-base_64xb64-100k_coco-vg-sbu-cc.py).
# The answer vocabulary must be the authors' 3129 answers in their order (the classifier's rows): their
# vqav2 label2ans list, written as a JSON list to data/vqav2/answer_list.json.
_base_ = ['./fiber-vqa_swin-b_roberta-base_8xb64-10e_vqav2.py']
model = dict(
    backbone=dict(
        visual=dict(pretrain_img_size=576, window_size=18),
        visual_checkpoint=None,
        language_model=dict(pretrained_weights=False),
        fused_last_text_norm=False,
        fused_visual_out_norm=False,
        shift_single_window=False))
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='mmdet.Resize', scale=(576, 576), keep_ratio=False, interpolation='bicubic'),
    dict(type='PackImageTextInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
