# RefCOCO+ (UNC split) in MDETR's annotation format: the data settings of ./refcoco.py (the COCO train2014 images,
# SiRi's input of max side 640, loaders and metric), with the RefCOCO+ expressions.
# Layout: data/coco/train2014/*.jpg, data/mdetr_annotations/finetune_refcoco+_{train,val,testA,testB}.json
_base_ = ['./refcoco.py']

dataset_type = 'RefCOCOPlusDataset'
train_dataloader = dict(dataset=dict(type=dataset_type, ann_file='mdetr_annotations/finetune_refcoco+_train.json'))
val_dataloader = dict(dataset=dict(type=dataset_type, ann_file='mdetr_annotations/finetune_refcoco+_val.json'))
test_dataloader = dict(dataset=dict(datasets=[
    dict(dataset, type=dataset_type, ann_file=f'mdetr_annotations/finetune_refcoco+_{split}.json')
    for dataset, split in zip(_base_.test_dataloader.dataset.datasets, ('val', 'testA', 'testB'))
]))
