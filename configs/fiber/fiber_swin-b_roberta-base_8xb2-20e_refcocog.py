# FIBER-B fine-tuned for referring expression comprehension on refcocog (see the RefCOCO config).
_base_ = './fiber_swin-b_roberta-base_8xb2-20e_refcoco.py'
dataset_type = 'RefCOCOgDataset'
ann_prefix = 'mdetr_annotations/finetune_refcocog'
train_dataloader = dict(dataset=dict(type=dataset_type, ann_file=f'{ann_prefix}_train.json'))
val_dataloader = dict(dataset=dict(type=dataset_type, ann_file=f'{ann_prefix}_val.json'))
test_dataloader = dict(
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type=dataset_type, data_root='data/', ann_file=f'{ann_prefix}_{split}.json',
             data_prefix=dict(img='coco/train2014/'), test_mode=True, pipeline={{_base_.test_pipeline}})
        for split in ('val', 'test')]))
