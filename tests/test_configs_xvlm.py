"""The X-VLM reference configs: their key numbers against the authors' yaml files and the paper (the table below),
their pipelines and loops build, and their models build with tiny encoders in place of Swin-B/ViT-B and BERT-base.
X-VLM's image-text pre-training lists (JSON lines of {"image", "caption"}) are read by CaptionDataset."""
import json
import os.path as osp

import pytest
from mmengine.config import Config

from mmvlg.registry import LOOPS, MODELS, TRANSFORMS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

XVLM = osp.join(REPO_ROOT, 'configs', 'xvlm')

# Read from the authors' configs/Pretrain_XVLM_base_4m.yaml, _16m.yaml, Retrieval_coco.yaml, Retrieval_flickr.yaml
# and the paper's section 4.2 / appendix (the ViT variant). iters: epochs x ceil(train_dataset_size / batch).
# columns: lr, weight decay, batch per GPU, GPUs, max text tokens, image size, iterations (or epochs), warm-up
# iterations (fraction of the iterations for retrieval), region mix mode, retrieval k (0: pre-training)
REFERENCE = {
    'xvlm_swin-b_bert-base_8xb128-205k_4m.py':
        dict(lr=1e-4, wd=0.01, batch=128, gpus=8, tokens=40, img=224, iters=41 * 4995, warmup=2500, mode='step',
             k=0, max_masks=8),
    'xvlm_swin-b_bert-base_24xb128-201k_16m.py':
        dict(lr=1e-4, wd=0.01, batch=128, gpus=24, tokens=30, img=224, iters=38 * 5280, warmup=2500, mode='step',
             k=0, max_masks=6),
    'xvlm_vit-b-16_bert-base_32xb96-83k_4m.py':
        dict(lr=1e-4, wd=0.02, batch=48, gpus=32, tokens=25, img=256, iters=50 * 1665, warmup=50 * 1665 // 5,
             mode='merge', k=0, max_masks=None),
    'xvlm_swin-b_bert-base_8xb20-10e_coco-retrieval.py':
        dict(lr=3e-5, wd=0.01, batch=20, gpus=8, tokens=40, img=384, epochs=10, warmup=0.1, k=256),
    'xvlm_swin-b_bert-base_8xb20-10e_flickr30k-retrieval.py':
        dict(lr=3e-5, wd=0.01, batch=20, gpus=8, tokens=40, img=384, epochs=10, warmup=0.1, k=128),
}


def _tiny_model(model: dict) -> dict:
    """The config's model with a tiny image encoder of the same kind and a tiny BERT."""
    model = dict(model)
    enc = dict(model['vision_encoder'])
    if enc['type'] == 'XVLMSwin':
        model['vision_encoder'] = dict(type='XVLMSwin', img_size=64, embed_dims=8, depths=(1, 1, 1, 1),
                                       num_heads=(1, 1, 1, 1), window_size=2, drop_path_rate=0.0)
    else:
        model['vision_encoder'] = dict(type='XVLMViT', img_size=64, patch_size=16, embed_dims=16, depth=2,
                                       num_heads=2, local_attn_depth=enc['local_attn_depth'] // 2)
    model['language_model'] = dict(
        type='HFTextEncoder', max_length=model['language_model']['max_length'],
        model_config=dict(model_type='bert', hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=32),
        tokenizer=dict(type='word', vocab=['a', 'red', 'circle']), cross_attention=dict(start=1))
    for key, hidden in (('itm_head', 'hidden_dims'), ('bbox_head', None)):
        if model.get(key) and hidden:
            model[key] = dict(model[key], hidden_dims=32)
    if model.get('bbox_head'):
        model['bbox_head'] = dict(model['bbox_head'], mlp=dict(type='MLPBlock', hidden_dims=32))
    model['itc_head'] = dict(model['itc_head'], embed_dims=8)
    return model


@pytest.mark.parametrize('name', sorted(REFERENCE))
def test_xvlm_reference_config_numbers(name):
    register_all_modules()
    ref = REFERENCE[name]
    cfg = Config.fromfile(osp.join(XVLM, name))
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == 'AdamW'
    assert opt.optimizer.lr == ref['lr'] and opt.optimizer.weight_decay == ref['wd']
    assert opt.paramwise_cfg.custom_keys['language_model.cross_attns'].lr_mult == 2.0  # lr_mult: 2
    assert cfg.train_dataloader.batch_size == ref['batch'] and cfg.auto_scale_lr.enable is False
    assert cfg.model.language_model.max_length == ref['tokens']
    model = cfg.model
    assert model.vision_encoder.img_size == ref['img']
    assert model.rerank_cfg.k == (ref['k'] or 256)
    scheduler = cfg.param_scheduler
    if 'iters' in ref:  # pre-training
        region = cfg.train_cfg.region_dataloader
        assert cfg.train_cfg.type == 'RegionStepTrainLoop' and cfg.train_cfg.mode == ref['mode']
        assert cfg.train_cfg.max_iters == ref['iters'] == scheduler[-1].end
        assert scheduler[0].end == scheduler[1].begin == ref['warmup']
        assert cfg.auto_scale_lr.base_batch_size == (ref['batch'] + (region.batch_size if ref['mode'] == 'merge'
                                                                     else 0)) * ref['gpus']
        if ref['mode'] == 'step':
            assert cfg.train_cfg.region_prob == 0.5 and region.batch_size == 48  # iter_perc, max_images
            assert model.mlm_head.masking.rule == 'count' and model.mlm_head.masking.max_masks == ref['max_masks']
            assert model.bbox_on_whole_image is False  # calc_image_bbox_loss: False
            assert scheduler[1].type == 'LinearLR' and scheduler[1].end_factor == 0.0
        else:  # the paper: 1e-5 -> 1e-4 over the first fifth, cosine to 1e-5, boxes of whole images too
            assert region.batch_size == ref['batch']  # half of each batch boxed
            assert scheduler[0].start_factor * ref['lr'] == pytest.approx(1e-5)
            assert scheduler[1].type == 'CosineAnnealingLR' and scheduler[1].eta_min == 1e-5
            assert model.mlm_head.masking.rule == 'bernoulli' and model.bbox_on_whole_image is True
        sampler = [t for d in region.dataset.datasets for t in d.pipeline if t['type'] == 'RegionTextSampler']
        assert sampler and all(t['max_regions'] == 5 and t['min_inside'] == 0.5 for t in sampler)
        for ds in cfg.train_dataloader.dataset.datasets:
            assert ds.type == 'CaptionDataset' and ds.ann_format == 'jsonl'
        pipelines = [cfg.train_dataloader.dataset.datasets[0].pipeline, region.dataset.datasets[0].pipeline]
    else:  # retrieval fine-tuning
        assert cfg.train_cfg.type == 'EpochBasedTrainLoop' and cfg.train_cfg.max_epochs == ref['epochs']
        assert scheduler[0].end == ref['warmup'] * ref['epochs'] and scheduler[1].end == ref['epochs']
        assert all(s.convert_to_iter_based for s in scheduler)
        assert model.vision_encoder.window_size == 12 and model.mlm_head is None and model.bbox_head is None
        assert model.rerank_cfg.add_similarity is False  # the top k ranked by the ITM score alone
        hook = [h for h in cfg.custom_hooks if h.type == 'CheckpointKeysHook'][0]  # pre-training heads dropped
        assert set(hook.allow_unexpected) == {r'^mlm_head\.', r'^bbox_head\.'}
        assert cfg.val_cfg.type == 'RetrievalValLoop' and cfg.test_cfg.type == 'RetrievalTestLoop'
        assert cfg.test_evaluator.type == 'RetrievalRecallMetric' and tuple(cfg.test_evaluator.topk) == (1, 5, 10)
        for split in ('train', 'val', 'test'):
            ds = cfg[f'{split}_dataloader'].dataset
            assert ds.type == 'CaptionDataset' and ds.ann_format == 'list' and split in ds.ann_file
        pipelines = [cfg.train_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline]
    for pipeline in pipelines:
        for step in pipeline:
            TRANSFORMS.build(step)
    assert LOOPS.get(cfg.train_cfg.type) is not None
    built = MODELS.build(_tiny_model(model))
    assert (built.mlm_head is None) == (model.mlm_head is None)
    assert built.retrieval_cfg['k'] == model.rerank_cfg.k


def test_caption_dataset_reads_xvlm_pretraining_lines(tmp_path):
    """X-VLM's pre-training shards (one JSON object a line, any file name): ann_format='jsonl'."""
    from mmvlg.datasets import CaptionDataset
    ann = tmp_path / 'coco_part_0'
    lines = [dict(image='coco/1.jpg', caption='a man riding a horse'),
             dict(image='coco/2.jpg', caption=['two dogs', 'dogs on the grass'])]
    ann.write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    ds = CaptionDataset(data_root=str(tmp_path), ann_file='coco_part_0', ann_format='jsonl',
                        data_prefix=dict(img='images/'), check_images=False, pipeline=[], lazy_init=False)
    assert [d['text'] for d in ds] == ['a man riding a horse', 'two dogs', 'dogs on the grass']
    assert ds[1]['img_id'] == ds[2]['img_id'] == 'coco/2.jpg'
    assert ds[0]['img_path'] == osp.join(str(tmp_path), 'images/', 'coco/1.jpg')
