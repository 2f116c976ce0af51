"""Object detection as grounding with FIBER: class-name prompts, token-to-class scores, COCO data end to end
(mmdet's CocoDataset + DetectionPrompt, loss, prediction, mmdet's CocoMetric) and the COCO reference config."""
import copy
import json

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmvlg.datasets.transforms import DETECTION_META_KEYS, DetectionPrompt, build_detection_prompt, clean_class_name
from mmvlg.models.utils import token_to_class_scores
from mmvlg.registry import DATASETS, METRICS, MODELS
from mmvlg.testing import get_config, tiny_fiber_config
from mmvlg.utils import register_all_modules

register_all_modules()

# non-contiguous COCO category ids, to check that labels map back to them
CATEGORIES = [dict(id=1, name='circle'), dict(id=3, name='square'), dict(id=7, name='triangle')]


def write_tiny_coco(root, num_images: int = 3, size: int = 64) -> str:
    """A COCO-format detection set of ``num_images`` noise images with 1-3 boxes each."""
    from PIL import Image
    rng = np.random.default_rng(0)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(num_images):
        Image.fromarray(rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)).save(root / 'images' / f'{i}.png')
        images.append(dict(id=i + 1, file_name=f'{i}.png', height=size, width=size))
        for _ in range(1 + i % 3):
            x, y = rng.uniform(0, size / 2, size=2)
            w, h = rng.uniform(8, size / 2, size=2)
            anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=CATEGORIES[len(anns) % 3]['id'],
                             bbox=[round(float(v), 2) for v in (x, y, w, h)], area=float(w * h), iscrowd=0))
    ann_file = root / 'instances.json'
    ann_file.write_text(json.dumps(dict(images=images, annotations=anns, categories=CATEGORIES)))
    return str(ann_file)


def coco_dataset(root, ann_file, train: bool):
    prompt = dict(type='DetectionPrompt', random_negatives=train, max_negatives=85, control_probs=(0.05, 0.05, 0.5))
    pipeline = [dict(type='LoadImageFromFile'), dict(type='mmdet.LoadAnnotations', with_bbox=True),
                dict(type='mmdet.Resize', scale=(96, 96), keep_ratio=True), prompt,
                dict(type='PackGroundingInputs', meta_keys=DETECTION_META_KEYS)]
    return DATASETS.build(dict(type='mmdet.CocoDataset', data_root=str(root), ann_file=ann_file,
                               data_prefix=dict(img='images/'), metainfo=dict(classes=('circle', 'square', 'triangle')),
                               return_classes=True, test_mode=not train, pipeline=pipeline))


def test_prompt_and_spans():
    assert clean_class_name('traffic_light') == 'traffic light'
    assert clean_class_name('hair drier (appliance)') == 'hair drier'
    prompt, spans = build_detection_prompt(['person', 'traffic_light', 'cat'])
    assert prompt == 'person. traffic light. cat'
    assert [prompt[s:e] for s, e in spans] == ['person', 'traffic light', 'cat']
    prompt, spans = build_detection_prompt(['person', 'traffic_light', 'cat'], order=[2, 0])
    assert prompt == 'cat. person' and spans[1] is None and prompt[slice(*spans[0])] == 'person'


def test_prompt_transform_keeps_positives_and_samples_negatives():
    names = [f'class{i}' for i in range(20)]
    labels = np.array([3, 3, 17])
    np.random.seed(0)
    seen_sizes = set()
    for _ in range(30):
        res = DetectionPrompt(names, random_negatives=True, max_negatives=85)(
            dict(gt_bboxes_labels=labels.copy()))
        text, class_spans = res['text'], res['class_spans']
        for label, spans in zip(labels, res['gt_tokens_positive']):
            assert text[slice(*spans[0])] == names[label]  # every box grounded on its own class name
        present = [c for c, s in enumerate(class_spans) if s]
        assert {3, 17} <= set(present)
        seen_sizes.add(len(present))
    assert len(seen_sizes) > 3  # different numbers of negatives (all, one, none, random)
    test = DetectionPrompt(names)(dict(gt_bboxes_labels=labels.copy()))
    assert test['text'] == '. '.join(names) and all(test['class_spans'])
    with pytest.raises(ValueError, match='label outside'):
        DetectionPrompt(names)(dict(gt_bboxes_labels=np.array([20])))
    with pytest.raises(KeyError, match='class names'):
        DetectionPrompt()(dict(gt_bboxes_labels=labels))


def test_token_to_class_scores_mean_and_max():
    probs = torch.tensor([[0.1, 0.5, 0.9, 0.3], [0.2, 0.2, 0.4, 0.8]])
    classes = [[1, 2], [3], []]
    mean = token_to_class_scores(probs, classes, 'mean')
    assert torch.allclose(mean, torch.tensor([[0.7, 0.3, 0.0], [0.3, 0.8, 0.0]]))
    mx = token_to_class_scores(probs[None], classes, 'max')[0]
    assert torch.allclose(mx, torch.tensor([[0.9, 0.3, 0.0], [0.4, 0.8, 0.0]]))
    with pytest.raises(ValueError, match='aggregation'):
        token_to_class_scores(probs, classes, 'sum')


def _detector(score_agg='mean'):
    cfg = tiny_fiber_config()
    cfg.update(type='FIBERObjectDetector', score_agg=score_agg)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


@pytest.mark.parametrize('score_agg', ['mean', 'max'])
def test_coco_detection_end_to_end(tmp_path, score_agg):
    ann_file = write_tiny_coco(tmp_path)
    train_set, test_set = coco_dataset(tmp_path, ann_file, True), coco_dataset(tmp_path, ann_file, False)
    model = _detector(score_agg)

    batch = pseudo_collate([train_set[i] for i in range(2)])
    for ds in batch['data_samples']:
        assert len(ds.tokens_positive) == len(ds.gt_instances) > 0
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert all(torch.isfinite(v) for v in losses.values()) and losses['loss_cls'] > 0
    sum(losses.values()).backward()

    metric = METRICS.build(dict(type='mmdet.CocoMetric', ann_file=ann_file, metric='bbox'))
    metric.dataset_meta = test_set.metainfo
    model.eval()
    for i in range(len(test_set)):
        batch = pseudo_collate([test_set[i]])
        assert batch['data_samples'][0].text == 'circle. square. triangle'
        with torch.no_grad():
            results = model(**model.data_preprocessor(batch, False), mode='predict')
        pred = results[0].pred_instances
        assert 0 < len(pred) <= 100 and set(pred.labels.tolist()) <= {0, 1, 2}
        assert torch.all(pred.scores[:-1] >= pred.scores[1:])
        metric.process({}, [r.to_dict() for r in results])
    out = metric.evaluate(len(test_set))
    assert {'coco/bbox_mAP', 'coco/bbox_mAP_50'} <= set(out) and 0 <= out['coco/bbox_mAP'] <= 1


def test_class_scores_follow_the_aggregation_and_absent_classes_never_score():
    """The class logits the head sees are logit(mean or max of the token probabilities); a class missing from
    the prompt gets -inf (probability 0, below any threshold)."""
    model = _detector('max')
    logits = [torch.randn(2, 5, 6)]
    tokens = [[[0, 1], [2], []]] * 2
    out = model.class_logits(logits, tokens)[0]
    assert out.shape == (2, 5, 3) and torch.isinf(out[..., 2]).all() and (out[..., 2] < 0).all()
    assert torch.allclose(out[..., 0].sigmoid(), logits[0][..., :2].sigmoid().max(-1)[0], atol=1e-6)


def test_prompt_longer_than_the_text_encoder_is_an_error():
    model = _detector()
    names = [f'circle{i}' for i in range(40)]  # 80 word tokens: more than the tiny encoder's 31
    res = DetectionPrompt(names)(dict(gt_bboxes_labels=np.array([0])))
    from mmdet.structures import DetDataSample
    ds = DetDataSample(metainfo=dict(text=res['text'], class_spans=res['class_spans'], img_id=5))
    tok = model.backbone.language_model.tokenize([res['text']])
    lang = dict(offsets=tok['offsets'], masks=tok['attention_mask'])
    with pytest.raises(ValueError, match='max_length'):
        model.class_tokens([ds], lang)


def test_coco_reference_config():
    cfg = get_config('fiber/fiber_swin-b_roberta-base_16xb2-24e_coco.py')
    m = cfg.model
    assert m.type == 'FIBERObjectDetector' and m.score_agg == 'mean' and m.backbone.num_fusion_layers == 6
    assert m.backbone.visual.depths == (2, 2, 18, 2) and m.test_cfg.score_thr == 0.05
    assert cfg.optim_wrapper.optimizer.lr == 1e-4 and cfg.optim_wrapper.optimizer.weight_decay == 0.01
    _, steps = cfg.param_scheduler
    assert [round(s / cfg.train_cfg.max_epochs, 2) for s in steps.milestones] == [0.67, 0.88]
    assert cfg.val_evaluator.type == 'mmdet.CocoMetric'
    prompt = [t for t in cfg.train_pipeline if t.type == 'DetectionPrompt'][0]
    assert prompt.random_negatives and prompt.separator == '. '
    # the same structure at a tiny width runs a loss
    model_cfg = copy.deepcopy(m)
    model_cfg.backbone.visual.update(embed_dims=16, depths=(1, 1, 4, 2), num_heads=(1, 1, 2, 2))
    model_cfg.backbone.language_model = tiny_fiber_config()['backbone']['language_model']
    model_cfg.backbone.language_model['model_config']['num_hidden_layers'] = 6
    model_cfg.neck.update(in_channels=[32, 64, 128], out_channels=32)
    model_cfg.bbox_head.update(in_channels=32, feat_channels=32, lang_dim=32, num_dyhead_blocks=1)
    assert MODELS.build(model_cfg).score_agg == 'mean'


def test_fine_grained_pretraining_config(tmp_path):
    """The paper's fine-grained pre-training settings, and its three training sources (MDETR's mixed GoldG file,
    Flickr30k Entities, Objects365 as grounding) pointed at tiny files: one sample of each goes through its own
    pipeline into one batch, and a tiny model of the same structure takes a loss step on it."""
    from mmvlg.testing import tiny_synthref
    cfg = get_config('fiber/fiber_swin-b_roberta-base_coarse-init_64xb1-800k_goldg-o365.py')
    m = cfg.model
    assert m.type == 'FIBERObjectDetector' and m.backbone.num_fusion_layers == 6
    assert m.backbone.visual_checkpoint is None and m.backbone.init_cfg.prefix == 'backbone.'
    assert cfg.train_cfg.max_iters == 800000 and cfg.train_dataloader.batch_size == 1  # x 64 GPUs
    opt = cfg.optim_wrapper
    assert opt.type == 'AmpOptimWrapper' and opt.clip_grad.max_norm == 1.0
    assert opt.optimizer.lr == 1e-4 and opt.optimizer.weight_decay == 0.01
    assert opt.paramwise_cfg.custom_keys['backbone.language_model'].lr_mult * 1e-4 == pytest.approx(1e-5)
    warmup, steps = cfg.param_scheduler
    assert warmup.end == 2000 and warmup.start_factor == 1e-3 and not steps.by_epoch
    assert [s / 800000 for s in steps.milestones] == [0.67, 0.89]
    sources = cfg.train_dataloader.dataset.datasets
    assert [s.type for s in sources] == ['MDETRRefExpDataset', 'Flickr30kEntitiesDataset',
                                         'mmdet.Objects365V2Dataset']

    root = tiny_synthref(str(tmp_path / 'synthref'), num_scenes=2)
    ann_file = write_tiny_coco(tmp_path / 'o365')
    small = dict(type='mmdet.Resize', scale=(96, 96), keep_ratio=True)
    for src in sources:
        src.pipeline = [small if t.type == 'RandomChoiceResize' else t for t in src.pipeline]
        if src.type == 'mmdet.Objects365V2Dataset':
            src.update(data_root=str(tmp_path / 'o365'), ann_file=ann_file, data_prefix=dict(img='images/'),
                       metainfo=dict(classes=('circle', 'square', 'triangle')))
        else:
            src.update(data_root=root, ann_file='annotations/finetune_synthref_train.json',
                       data_prefix=dict(img='images/'))
    concat = DATASETS.build(cfg.train_dataloader.dataset)
    firsts = [0, len(concat.datasets[0]), len(concat.datasets[0]) + len(concat.datasets[1])]
    batch = pseudo_collate([concat[i] for i in firsts])
    texts = [ds.text for ds in batch['data_samples']]
    assert all(isinstance(t, str) and t for t in texts)
    assert set(texts[2].split('. ')) <= {'circle', 'square', 'triangle'}  # a class-name prompt
    for ds in batch['data_samples']:
        assert len(ds.tokens_positive) == len(ds.gt_instances) > 0

    # the config's model at a tiny width (no init_weights: the coarse checkpoint does not exist here)
    model_cfg = copy.deepcopy(m)
    model_cfg.backbone.visual.update(embed_dims=16, depths=(1, 1, 4, 2), num_heads=(1, 1, 2, 2))
    model_cfg.backbone.language_model = tiny_fiber_config()['backbone']['language_model']
    model_cfg.backbone.language_model['model_config']['num_hidden_layers'] = 6
    model_cfg.neck.update(in_channels=[32, 64, 128], out_channels=32)
    model_cfg.bbox_head.update(in_channels=32, feat_channels=32, lang_dim=32, num_dyhead_blocks=1)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert all(torch.isfinite(v) for v in losses.values()) and losses['loss_cls'] > 0


def _chunk_classes():
    from mmvlg.datasets.synthref import COLORS, SHAPES
    return [f'{c} {s}' for c in COLORS for s in SHAPES]


def test_chunked_prompts():
    names = _chunk_classes()
    res = DetectionPrompt(class_names=names, chunk_size=4).transform(dict(gt_bboxes_labels=np.array([0, 5])))
    chunks = res['prompt_chunks']
    assert len(chunks) == -(-len(names) // 4) and res['text'] == chunks[0]['text']
    for k, chunk in enumerate(chunks):
        assert chunk['text'] == '. '.join(names[4 * k:4 * k + 4])
        present = [c for c, sp in enumerate(chunk['class_spans']) if sp]
        assert present == list(range(4 * k, min(4 * k + 4, len(names))))
        for c in present:
            (start, end), = chunk['class_spans'][c]
            assert chunk['text'][start:end] == names[c]
    assert res['gt_tokens_positive'] == [[[0, len(names[0])]], []]  # class 5 is in the second chunk
    with pytest.raises(ValueError, match='chunk_size'):
        DetectionPrompt(chunk_size=4, random_negatives=True)


def test_chunked_prediction_merges_the_chunks():
    """More classes than fit in max_length: one prompt is an error; chunks run once each and the merged
    detections are the best of every chunk's detections (each class is in one chunk, so NMS per class holds)."""
    from mmdet.structures import DetDataSample

    from mmvlg.testing import demo_grounding_batch
    names = _chunk_classes()
    model = _detector('mean')
    model.eval()
    model.bbox_head.test_cfg['max_per_img'] = 30
    batch = demo_grounding_batch(2, image_shapes=[(64, 80), (64, 80)])
    full = DetectionPrompt(class_names=names).transform({})
    chunked = DetectionPrompt(class_names=names, chunk_size=5).transform({})
    for ds in batch['data_samples']:
        ds.set_metainfo(dict(text=full['text'], class_spans=full['class_spans']))
    with pytest.raises(ValueError, match='max_length'), torch.no_grad():
        model(**model.data_preprocessor(batch, False), mode='predict')

    for ds in batch['data_samples']:
        ds.set_metainfo(dict(text=chunked['text'], class_spans=chunked['class_spans'],
                             prompt_chunks=chunked['prompt_chunks']))
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        merged = [r.pred_instances for r in model(**data, mode='predict')]
        per_chunk = []
        for chunk in chunked['prompt_chunks']:
            samples = [DetDataSample(metainfo={k: v for k, v in {**ds.metainfo, **chunk}.items()
                                               if k != 'prompt_chunks'}) for ds in data['data_samples']]
            per_chunk.append([r.pred_instances for r in model.predict(data['inputs'], samples)])
    for b in range(2):
        scores = torch.cat([p[b].scores for p in per_chunk])
        labels = torch.cat([p[b].labels for p in per_chunk])
        top = scores.argsort(descending=True)[:30]
        assert len(merged[b]) == 30 and torch.equal(merged[b].scores, scores[top])
        assert torch.equal(merged[b].labels, labels[top])
        assert len(set(merged[b].labels.tolist())) > 5  # classes of more than one chunk


def test_lvis_reference_config_evaluates_in_chunks():
    from mmdet.datasets import LVISV1Dataset
    cfg = get_config('fiber/fiber_swin-b_roberta-base_16xb2-24e_lvis.py')
    assert cfg.train_dataloader.dataset.type == 'mmdet.LVISV1Dataset' and cfg.val_evaluator.type == 'mmdet.LVISMetric'
    assert cfg.train_dataloader.dataset.return_classes and cfg.model.test_cfg.max_per_img == 300
    prompt_cfg = [t for t in cfg.val_dataloader.dataset.pipeline if t.type == 'DetectionPrompt'][0]
    assert 'prompt_chunks' in cfg.val_dataloader.dataset.pipeline[-1].meta_keys
    prompt = DetectionPrompt(**{k: v for k, v in prompt_cfg.items() if k != 'type'})
    names = LVISV1Dataset.METAINFO['classes']
    res = prompt.transform(dict(text=names, gt_bboxes_labels=np.array([1202])))
    assert len(res['prompt_chunks']) == 31  # 1203 classes, 40 per prompt
    covered = [c for chunk in res['prompt_chunks'] for c, sp in enumerate(chunk['class_spans']) if sp]
    assert covered == list(range(1203))
