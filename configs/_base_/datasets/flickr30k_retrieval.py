# Flickr30k image-text retrieval, the Karpathy split (1k val and 1k test images with 5 captions each), in X-VLM's
# authors' files (data/finetune/flickr30k_{train,val,test}.json, the layout of coco_retrieval.py), images under
# data/images/. A model config sets its pipelines and training batch size as for coco_retrieval.py.
_base_ = ['./coco_retrieval.py']
image_root = 'images/'
ann_files = dict(train='finetune/flickr30k_train.json', val='finetune/flickr30k_val.json',
                 test='finetune/flickr30k_test.json')
train_dataloader = dict(dataset=dict(ann_file=ann_files['train'], data_prefix=dict(img=image_root)))
val_dataloader = dict(dataset=dict(ann_file=ann_files['val'], data_prefix=dict(img=image_root)))
test_dataloader = dict(dataset=dict(ann_file=ann_files['test'], data_prefix=dict(img=image_root)))
