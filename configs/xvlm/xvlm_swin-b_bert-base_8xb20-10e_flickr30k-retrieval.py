# X-VLM-base image-text retrieval fine-tuning on Flickr30k (Karpathy split) as released (the authors'
# configs/Retrieval_flickr.yaml): the COCO config (xvlm_swin-b_bert-base_8xb20-10e_coco-retrieval.py) with the
# Flickr30k files (data/finetune/flickr30k_{train,val,test}.json, images under data/images/) and the ITC top
# k=128 re-scored by ITM; the same optimizer and schedule (lr 3e-5, 10 epochs, 10% warm-up, batch 20 x 8, 384 px).
_base_ = ['./xvlm_swin-b_bert-base_8xb20-10e_coco-retrieval.py']

k_test = 128
image_root = 'images/'
model = dict(rerank_cfg=dict(k=k_test))
train_dataloader = dict(dataset=dict(ann_file='finetune/flickr30k_train.json', data_prefix=dict(img=image_root)))
val_dataloader = dict(dataset=dict(ann_file='finetune/flickr30k_val.json', data_prefix=dict(img=image_root)))
test_dataloader = dict(dataset=dict(ann_file='finetune/flickr30k_test.json', data_prefix=dict(img=image_root)))
