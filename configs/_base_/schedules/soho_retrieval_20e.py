# SOHO's image-text retrieval fine-tuning schedule (the paper, section 4.2.1): AdamW, learning rate 1e-4, weight
# decay 1e-2, 20 epochs, the learning rate halved at epochs 3, 5, 9 and 13. The paper names one AdamW for the fine-
# tuning (not the pre-training's SGD for the backbone), so it optimizes every parameter here. Validation at the end
# only: ranking a 5k-image, 25k-caption gallery scores every pair through the 12-layer transformer.
max_epochs = 20
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-2))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[3, 5, 9, 13], gamma=0.5, begin=0,
                        end=max_epochs)]
