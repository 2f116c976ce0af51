# Tiny weakly supervised X-VLM REC on SynthRef (2 CPU cores, minutes): the tiny pre-training config's model with
# ITC and ITM only, fine-tuned on the (image, expression) pairs of SynthRef's REC train set without any box (the
# expressions of one scene are positives of each other), as the released Grounding.py. At test time Grad-CAM of the
# ITM match logit on the cross-attention of the last cross layer (layer 3 of 4; the released Swin-B config uses
# block_num 9, the 4th of 6 cross layers) scores each proposal by its in-box sum / sqrt(area); the proposals are
# every object of the scene (annotations/scenes_{split}.json written by the SynthRef generator, x1, y1, x2, y2),
# SynthRef's stand-in for the detections of MAttNet's Mask R-CNN. Prec@0.5 of the top proposal (RefExpMetric).
# Initialized from the tiny pre-training: --cfg-options load_from=work_dirs/<pre-training run>/iter_3000.pth.
_base_ = ['./xvlm-rec_vit-tiny_bert-tiny_1xb32-3e_synthref.py']
width = 64
model = dict(
    _delete_=True,
    type='XVLMWeakGrounding',
    data_preprocessor=_base_.model.data_preprocessor,
    vision_encoder=_base_.model.vision_encoder,
    language_model=_base_.model.language_model,
    itc_head=dict(type='ITCHead', embed_dims=32, temperature=0.07, temperature_range=(0.001, 0.5),
                  pooler=dict(type='DualStreamPooler', image_pooling='cls', tanh_pooler=False, pool_first=True)),
    itm_head=dict(type='ITMHead', hidden_dims=2 * width),
    gradcam_layer=3,
    proposal_alpha=0.5,
    image_id_key='original_id')

data_root = _base_.data_root
resize = _base_.resize
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='GroundingRandomFlip', prob=0.5), resize,
                  dict(type='PackGroundingInputs')]


def _test_pipeline(split):
    return [dict(type='LoadImageFromFile'), resize, dict(type='LoadGroundingAnnotations'),
            dict(type='LoadProposals', proposal_file=f'{data_root}annotations/scenes_{split}.json', box_format='xyxy',
                 id_key='original_id'),
            dict(type='PackGroundingInputs')]


train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_test_pipeline('val')))
test_dataloader = dict(dataset=dict(datasets=[
    dict(d, pipeline=_test_pipeline(split))
    for d, split in zip(_base_.test_dataloader.dataset.datasets, ('val', 'testA', 'testB'))]))
val_evaluator = dict(type='RefExpMetric', topk=(1, ), iou_thr=0.5)
test_evaluator = val_evaluator
custom_hooks = [dict(type='CheckpointKeysHook', allow_unexpected=[r'^(mlm_head|bbox_head)\.'])]
