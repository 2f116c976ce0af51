"""XVLM: pre-training losses on image-text and region-text samples (interface 2), gradients, ITM negatives,
the box loss with and without whole-image targets, the temperature clamp, the 2x learning rate of the fresh
cross-attention, a text encoder loaded from one BERT folder, and retrieval through RetrievalValLoop."""
import copy
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmvlg.datasets.synthetic import caption_vocabulary
from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

register_all_modules()

WIDTH, VIS = 32, 48
BASE = osp.join(REPO_ROOT, 'configs', '_base_', 'models')


def _config(**kwargs) -> dict:
    cfg = dict(
        type='XVLM',
        vision_encoder=dict(type='XVLMViT', img_size=32, patch_size=8, embed_dims=VIS, depth=2, num_heads=2,
                            local_attn_depth=1),
        language_model=dict(
            type='HFTextEncoder', max_length=24, tokenizer=dict(type='word', vocab=caption_vocabulary()),
            model_config=dict(model_type='bert', hidden_size=WIDTH, num_hidden_layers=4, num_attention_heads=2,
                              intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
            cross_attention=dict(start=2)),
        itc_head=dict(type='ITCHead', embed_dims=16, temperature=0.07, temperature_range=(0.001, 0.5),
                      pooler=dict(type='DualStreamPooler', image_pooling='cls', tanh_pooler=False, pool_first=True)),
        itm_head=dict(type='ITMHead', hidden_dims=2 * WIDTH),
        mlm_head=dict(type='MLMHead', tie_word_embeddings=True,
                      masking=dict(rule='count', mask_prob=0.25, max_masks=4)),
        bbox_head=dict(type='BoxRegressionHead', mlp=dict(type='MLPBlock', hidden_dims=2 * WIDTH),
                       loss_bbox=dict(type='mmdet.L1Loss', loss_weight=1.0),
                       loss_iou=dict(type='mmdet.GIoULoss', loss_weight=1.0)),
        rerank_cfg=dict(k=2, batch_size=3))
    cfg.update(kwargs)
    return cfg


def _model(**kwargs):
    torch.manual_seed(0)
    model = MODELS.build(_config(**kwargs))
    model.init_weights()
    return model


def _sample(img_id, text='', regions=(), size=32):
    """An interface-2 data sample: regions are (text, [x1, y1, x2, y2] px, is_image)."""
    ds = DetDataSample(metainfo=dict(text=text, img_id=img_id, img_shape=(size, size), ori_shape=(size, size),
                                     region_texts=[r[0] for r in regions],
                                     region_is_image=[bool(r[2]) for r in regions]))
    boxes = torch.tensor([r[1] for r in regions], dtype=torch.float32).reshape(-1, 4)
    ds.gt_instances = InstanceData(bboxes=boxes, labels=torch.zeros(len(boxes), dtype=torch.long))
    return ds


def _batch():
    whole = [0., 0., 32., 32.]
    return [
        _sample(0, 'a red circle and a blue square',
                [('a red circle and a blue square', whole, True), ('red circle', [2., 3., 14., 15.], False),
                 ('the square right of the red circle', [16., 8., 30., 24.], False)]),
        _sample(1, 'two green triangles'),
        _sample(2, '', [('big yellow diamond', [8., 8., 24., 30.], False)]),
        _sample(1, 'the green triangles'),  # another caption of image 1: a positive of sample 1
    ]


LOSS_KEYS = {'loss_itc', 'loss_itm', 'acc_itm', 'loss_mlm', 'acc_mlm', 'loss_itc_region', 'loss_itm_region',
             'acc_itm_region', 'loss_mlm_region', 'acc_mlm_region', 'loss_bbox', 'loss_iou', 'temperature'}


def test_losses_keys_finite_and_gradients():
    model = _model()
    assert model.fusion_layer == 2 and model.language_model.cross_attention_layers == [2, 3]
    assert model.mlm_head.decoder.weight is model.language_model.word_embeddings.weight
    torch.manual_seed(1)
    losses = model(torch.randn(4, 3, 32, 32), _batch(), mode='loss')
    assert set(losses) == LOSS_KEYS
    for k, v in losses.items():
        assert v.dim() == 0 and torch.isfinite(v), k
    for k in ('loss_itc', 'loss_itm', 'loss_mlm', 'loss_itc_region', 'loss_itm_region', 'loss_mlm_region',
              'loss_bbox', 'loss_iou'):
        assert losses[k] > 0, k
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    lm, vis = model.language_model, model.vision_encoder
    grads = dict(patch_embed=vis.patch_embed.proj.weight, mixed_block=vis.blocks[-1].attn.qkv.weight,
                 cross_key=lm.cross_attns['2'].self.key.weight, cross_top=lm.cross_attns['3'].output.dense.weight,
                 text_layer=lm.layers[0].attention.self.query.weight, words=lm.word_embeddings.weight,
                 itc=model.itc_head.proj.image_proj.weight, tau=model.itc_head.temperature,
                 itm=model.itm_head.fc[0].weight, mlm=model.mlm_head.dense.weight,
                 box=model.bbox_head.bbox_embed[0].weight)
    for name, p in grads.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # only plain pairs: the same keys, the region and box losses zero but in the graph
    model.zero_grad()
    losses = model(torch.randn(2, 3, 32, 32), [_sample(5, 'a red circle'), _sample(6, 'a blue square')], 'loss')
    assert set(losses) == LOSS_KEYS
    assert losses['loss_bbox'] == 0 and losses['loss_itm_region'] == 0 and losses['loss_itc'] > 0
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert model.bbox_head.bbox_embed[0].weight.grad is not None


def test_itm_never_samples_a_positive():
    """Image level: samples of one img_id are positives; region level: the same text of the same image. Over
    many draws from batches full of positives, every ITM negative pairs two different ids."""
    model = _model()
    seen = []
    original = model.itm_pairs

    def spy(sim, ids, generator=None):
        img_idx, text_idx, labels = original(sim, ids, generator)
        seen.append((ids, img_idx, text_idx, labels))
        return img_idx, text_idx, labels

    model.itm_pairs = spy
    box = [4., 4., 20., 20.]
    batch = [_sample(0, 'a red circle', [('red circle', box, False), ('red circle', [0., 0., 10., 10.], False)]),
             _sample(0, 'the red circle', [('blue square', box, False)]),
             _sample(0, 'a circle'), _sample(1, 'a square', [('red circle', box, False)])]
    with torch.no_grad():
        for seed in range(8):
            torch.manual_seed(seed)
            model(torch.randn(4, 3, 32, 32), batch, mode='loss')
    assert len(seen) == 16
    negatives = 0
    for ids, img_idx, text_idx, labels in seen:
        n = len(ids)
        assert torch.equal(labels[:n], torch.ones(n, dtype=torch.long)) and not labels[n:].any()
        assert (ids[img_idx[labels == 1]] == ids[text_idx[labels == 1]]).all()
        assert (ids[img_idx[labels == 0]] != ids[text_idx[labels == 0]]).all()
        negatives += int((labels == 0).sum())
    assert negatives > 0
    # the two "red circle" regions of image 0 share an id, the one of image 1 does not
    region_ids = seen[1][0]
    assert region_ids[0] == region_ids[1] and region_ids[0] != region_ids[3]


def test_box_loss_with_and_without_whole_image_targets():
    whole = [0., 0., 32., 32.]
    only_whole = [_sample(0, 'a scene', [('a scene', whole, True)]), _sample(1, 'x', [('y z', whole, True)])]
    skip, keep = _model(), _model(bbox_on_whole_image=True)
    keep.load_state_dict(skip.state_dict())
    skip.eval(), keep.eval()
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = skip(inputs, only_whole, mode='loss')
        assert out['loss_bbox'] == 0 and out['loss_iou'] == 0  # the authors' default: whole-image boxes skipped
        out = keep(inputs, only_whole, mode='loss')
        assert out['loss_bbox'] > 0 and out['loss_iou'] > 0
        # with a real box next to the whole image: skipping equals training on the real box alone
        region = ('red circle', [2., 3., 14., 15.], False)
        mixed = [_sample(0, 'a scene', [('a scene', whole, True), region])]
        alone = [_sample(0, 'a scene', [region])]
        a = skip(inputs[:1], mixed, mode='loss')
        b = keep(inputs[:1], alone, mode='loss')
        c = keep(inputs[:1], mixed, mode='loss')
    for k in ('loss_bbox', 'loss_iou'):
        assert torch.allclose(a[k], b[k], atol=1e-6) and a[k] > 0
        assert not torch.allclose(a[k], c[k])


def test_temperature_clamped_to_the_configured_range():
    model = _model()
    for start, expect in ((0.9, 0.5), (1e-5, 0.001), (0.2, 0.2)):
        with torch.no_grad():
            model.itc_head.temperature.fill_(start)
            losses = model(torch.randn(2, 3, 32, 32), [_sample(0, 'a red circle'), _sample(1, 'a square')], 'loss')
        assert model.itc_head.temperature.item() == pytest.approx(expect)
        assert losses['temperature'].item() == pytest.approx(expect)


def test_bad_region_input_names_the_image():
    model = _model()
    with pytest.raises(ValueError, match=r"region 0 of image 7 .*empty text"):
        model(torch.randn(1, 3, 32, 32), [_sample(7, 'a', [(' ', [0., 0., 5., 5.], False)])], 'loss')
    with pytest.raises(ValueError, match=r"region 0 \('red circle'\) of image 8 .*outside its image"):
        model(torch.randn(1, 3, 32, 32), [_sample(8, 'a', [('red circle', [10., 0., 40., 5.], False)])], 'loss')
    with pytest.raises(ValueError, match='zero area'):
        model(torch.randn(1, 3, 32, 32), [_sample(9, 'a', [('red circle', [5., 5., 5., 9.], False)])], 'loss')
    with pytest.raises(ValueError, match='image 3 .*neither a text nor regions'):
        model(torch.randn(1, 3, 32, 32), [_sample(3, '')], 'loss')
    with pytest.raises(ValueError, match='cross_attention'):
        cfg = _config()
        cfg['language_model'] = dict(cfg['language_model'], cross_attention=None)
        MODELS.build(cfg)


def _tiny_bert_folder(path):
    """A 4-layer BERT masked LM with a word-piece tokenizer saved as a Hugging Face folder (what a BERT-base
    download looks like, in small)."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast
    path.mkdir(parents=True)
    words = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'red', 'circle', 'blue', 'square', 'the', '##s']
    (path / 'vocab.txt').write_text('\n'.join(words))
    BertTokenizerFast(str(path / 'vocab.txt')).save_pretrained(str(path))
    torch.manual_seed(3)
    config = BertConfig(vocab_size=len(words), hidden_size=WIDTH, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64)
    BertForMaskedLM(config).save_pretrained(str(path))
    return str(path)


def test_text_and_cross_encoder_from_one_bert_folder(tmp_path):
    """Layers 0-1 (text encoder) and 2-3 (cross encoder) come from one checkpoint folder, the cross-attention
    starts fresh, the MLM head starts from the checkpoint's prediction head (its decoder tied)."""
    from transformers import BertForMaskedLM
    folder = _tiny_bert_folder(tmp_path / 'bert')
    cfg = _config(language_model=dict(type='HFTextEncoder', name_or_path=folder, max_length=16,
                                      cross_attention=dict(start=2)))
    model = MODELS.build(cfg)
    model.init_weights()
    ref = BertForMaskedLM.from_pretrained(folder).state_dict()
    lm = model.language_model
    for i in range(4):
        assert torch.equal(lm.layers[i].attention.self.query.weight,
                           ref[f'bert.encoder.layer.{i}.attention.self.query.weight'])
    assert torch.equal(model.mlm_head.dense.weight, ref['cls.predictions.transform.dense.weight'])
    assert torch.equal(model.mlm_head.norm.bias, ref['cls.predictions.transform.LayerNorm.bias'])
    assert torch.equal(model.mlm_head.bias, ref['cls.predictions.bias'])
    assert model.mlm_head.decoder.weight is lm.word_embeddings.weight
    assert lm.cross_attns['2'].self.key.weight.shape == (WIDTH, VIS)
    losses = model(torch.randn(2, 3, 32, 32), [_sample(0, 'a red circle', [('red circles', [0., 0., 9., 9.], 0)]),
                                                _sample(1, 'the blue square')], 'loss')
    assert all(torch.isfinite(v) for v in losses.values())


def test_cross_attention_and_new_heads_train_at_twice_the_lr():
    """The optimizer built from the base config's paramwise_cfg: 2x for the fresh cross-attention, the ITC
    projections and temperature, ITM and box heads; 1x for the BERT layers, the image encoder, the MLM head."""
    from mmengine.optim import build_optim_wrapper
    for base in ('xvlm_swin-b_bert-base.py', 'xvlm_vit-b-16_bert-base.py'):
        optim_cfg = copy.deepcopy(Config.fromfile(osp.join(BASE, base)).optim_wrapper)
        model = _model()
        wrapper = build_optim_wrapper(model, optim_cfg)
        lr = optim_cfg.optimizer.lr
        by_param = {id(p): g['lr'] for g in wrapper.optimizer.param_groups for p in g['params']}
        names = dict(model.named_parameters())
        for name, p in names.items():
            fresh = name.startswith(('language_model.cross_attns.', 'itc_head.', 'itm_head.', 'bbox_head.'))
            assert by_param[id(p)] == pytest.approx(2 * lr if fresh else lr), name
        assert any(n.startswith('language_model.cross_attns.2.self.query') for n in names)


def test_retrieval_through_the_loop():
    """RetrievalValLoop: every image and text encoded once, the top-2 of each query re-scored by ITM from the
    cached image tokens and text-encoder outputs; by default the re-scored candidates rank by the ITM logit
    alone (the authors), with add_similarity by similarity + ITM."""
    from mmengine.evaluator import Evaluator

    from mmvlg.engine.runner.retrieval_loop import RetrievalValLoop
    model = _model(data_preprocessor=dict(type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                          std=[58.395, 57.12, 57.375]))
    model.eval()
    texts = ['the red circle', 'the big blue square', 'the small green triangle', 'a red circle']
    img_ids = [0, 1, 2, 0]
    images = torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8)
    batches = [dict(inputs=[images[i] for i in img_ids[s:s + 2]],
                    data_samples=[_sample(i, t) for t, i in zip(texts[s:s + 2], img_ids[s:s + 2])]) for s in (0, 2)]
    calls = []
    score_pairs = model.score_pairs
    model.score_pairs = lambda im, tx: calls.append(len(im['tokens'])) or score_pairs(im, tx)

    class Runner:
        pass

    runner = Runner()
    runner.model = model
    runner.call_hook = lambda *a, **k: None
    loop = RetrievalValLoop.__new__(RetrievalValLoop)
    loop._runner, loop.dataloader = runner, batches
    loop.evaluator = Evaluator([dict(type='RetrievalRecallMetric', topk=(1, 2))])
    metrics = loop._retrieve()
    assert set(metrics) == {'retrieval/text_R@1', 'retrieval/text_R@2', 'retrieval/image_R@1',
                            'retrieval/image_R@2', 'retrieval/R_mean'}
    assert sum(calls) == 3 * 2 + 4 * 2 and max(calls) <= 3
    # every pair re-scored (k = all): the scores are the ITM logits (x itm_weight), or sim + logit
    data = model.data_preprocessor(dict(inputs=list(images), data_samples=[_sample(i, 'x') for i in range(3)]))
    gallery = model.encode_images(data['inputs'], data['data_samples'])
    caps = model.encode_texts(texts)
    from mmvlg.models.multimodal.retrieval import split_cached
    rows, cols = split_cached(gallery), split_cached(caps)
    model.score_pairs = score_pairs
    model.rerank_cfg.update(k=4, itm_weight=2.0)
    i2t, t2i = model.rank_gallery(rows, cols)
    fused = model.cross_encode(caps['tokens'].repeat(3, 1, 1), caps['attention_mask'].repeat(3, 1),
                               gallery['tokens'].repeat_interleave(4, 0))
    logits = model.itm_head.score(fused[:, 0]).view(3, 4)
    assert torch.allclose(i2t, 2 * logits, atol=1e-4) and torch.allclose(t2i, 2 * logits, atol=1e-4)
    model.rerank_cfg.update(add_similarity=True)
    i2t, _ = model.rank_gallery(rows, cols)
    sim = gallery['embed'] @ caps['embed'].t()
    assert torch.allclose(i2t, sim + 2 * logits, atol=1e-4)
    # predict gives the ITC embeddings of each sample
    out = model.predict(data['inputs'], [_sample(i, t) for i, t in enumerate(texts[:3])])
    assert torch.allclose(out[0].img_embed, gallery['embed'][0], atol=1e-5)
    assert torch.allclose(out[1].text_embed, caps['embed'][1], atol=1e-5)
