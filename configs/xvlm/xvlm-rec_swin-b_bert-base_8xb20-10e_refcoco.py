# X-VLM-base supervised REC on RefCOCO (UNC split): the RefCOCO+ config's model, schedule and pipelines
# (./xvlm-rec_swin-b_bert-base_8xb20-10e_refcoco+.py) with the RefCOCO expressions in MDETR's format
# (data/mdetr_annotations/finetune_refcoco_{train,val,testA,testB}.json).
_base_ = ['./xvlm-rec_swin-b_bert-base_8xb20-10e_refcoco+.py']

dataset_type = 'RefCOCODataset'
train_dataloader = dict(dataset=dict(type=dataset_type, ann_file='mdetr_annotations/finetune_refcoco_train.json'))
val_dataloader = dict(dataset=dict(type=dataset_type, ann_file='mdetr_annotations/finetune_refcoco_val.json'))
test_dataloader = dict(dataset=dict(datasets=[
    dict(dataset, type=dataset_type, ann_file=f'mdetr_annotations/finetune_refcoco_{split}.json')
    for dataset, split in zip(_base_.test_dataloader.dataset.datasets, ('val', 'testA', 'testB'))
]))
