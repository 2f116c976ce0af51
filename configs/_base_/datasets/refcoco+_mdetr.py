# RefCOCO+ as MDETR fine-tunes on it: the data of ./refcoco+.py with MDETR's input sizes and 4 images per GPU.
_base_ = ['./refcoco+.py', './mdetr_refexp_pipelines.py']

train_pipeline = _base_.mdetr_train_pipeline
test_pipeline = _base_.mdetr_test_pipeline
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=4,
    dataset=dict(datasets=[dict(d, pipeline=test_pipeline) for d in _base_.test_dataloader.dataset.datasets]))
