# RefCOCOg (UMD split) in MDETR's annotation format: the data settings of ./refcoco.py (the COCO train2014 images,
# SiRi's input of max side 640, loaders and metric), with the RefCOCOg expressions and its val and test splits.
# Layout: data/coco/train2014/*.jpg, data/mdetr_annotations/finetune_refcocog_{train,val,test}.json
_base_ = ['./refcoco.py']

dataset_type = 'RefCOCOgDataset'
train_dataloader = dict(dataset=dict(type=dataset_type, ann_file='mdetr_annotations/finetune_refcocog_train.json'))
val_dataloader = dict(dataset=dict(type=dataset_type, ann_file='mdetr_annotations/finetune_refcocog_val.json'))
# RefCOCOg has no testA/testB: val and test.
test_dataloader = dict(dataset=dict(datasets=[
    dict(dataset, type=dataset_type, ann_file=f'mdetr_annotations/finetune_refcocog_{split}.json')
    for dataset, split in zip(_base_.test_dataloader.dataset.datasets[:2], ('val', 'test'))
]))
