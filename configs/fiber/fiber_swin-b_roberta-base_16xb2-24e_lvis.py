# FIBER-B fine-tuned for LVIS v1 object detection as grounding (arXiv:2206.07643, section 4.1; the authors' file:
# microsoft/FIBER fine_grained/configs/e2e_dyhead_SwinT_B_FPN_lvis_finetuning_fusion_backbone.yaml). Training
# prompts are the positive classes plus up to 85 sampled negatives, as for COCO. The 1203 class names do not fit
# in RoBERTa's 256 tokens, so evaluation runs in chunks of 40 classes (GLIP/FIBER's chunked evaluation,
# TEST.CHUNKED_EVALUATION 40): one forward pass per chunk, detections merged (DetectionPrompt(chunk_size=40),
# FIBERObjectDetector). Box AP with mmdet's LVISMetric (needs `pip install lvis`), on val (or minival: set the
# ann_file). Schedule and settings as the COCO config (24 epochs at batch 32, the paper's optimization).
# Layout (as mmdet's LVIS configs): data/lvis_v1/annotations/lvis_v1_{train,val}.json and the COCO 2017 images
# in data/lvis_v1/{train2017,val2017}/
_base_ = './fiber_swin-b_roberta-base_16xb2-24e_coco.py'

dataset_type = 'mmdet.LVISV1Dataset'
data_root = 'data/lvis_v1/'
backend_args = None
meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction', 'text',
             'class_spans', 'prompt_chunks')
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='mmdet.Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='mmdet.LoadAnnotations', with_bbox=True),
    dict(type='DetectionPrompt', separator='. ', chunk_size=40),
    dict(type='PackGroundingInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='annotations/lvis_v1_train.json',
                 data_prefix=dict(img='')))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='annotations/lvis_v1_val.json',
                 data_prefix=dict(img=''), pipeline=test_pipeline))
test_dataloader = val_dataloader
# LVIS keeps up to 300 detections per image
model = dict(test_cfg=dict(max_per_img=300))
val_evaluator = dict(_delete_=True, type='mmdet.LVISMetric', ann_file=data_root + 'annotations/lvis_v1_val.json',
                     metric='bbox', backend_args=backend_args)
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='lvis/bbox_AP', rule='greater'))
