# X-VLM-base supervised REC on RefCOCOg (UMD split): the RefCOCO+ config's model, schedule and pipelines
# (./xvlm-rec_swin-b_bert-base_8xb20-10e_refcoco+.py) with the RefCOCOg expressions in MDETR's format
# (data/mdetr_annotations/finetune_refcocog_{train,val,test}.json; no testA/testB).
_base_ = ['./xvlm-rec_swin-b_bert-base_8xb20-10e_refcoco+.py']

dataset_type = 'RefCOCOgDataset'
train_dataloader = dict(dataset=dict(type=dataset_type, ann_file='mdetr_annotations/finetune_refcocog_train.json'))
val_dataloader = dict(dataset=dict(type=dataset_type, ann_file='mdetr_annotations/finetune_refcocog_val.json'))
test_dataloader = dict(dataset=dict(datasets=[
    dict(dataset, type=dataset_type, ann_file=f'mdetr_annotations/finetune_refcocog_{split}.json')
    for dataset, split in zip(_base_.test_dataloader.dataset.datasets[:2], ('val', 'test'))
]))
