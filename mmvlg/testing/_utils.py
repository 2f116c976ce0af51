"""Helpers for tests: configs from the repository, tiny model configs and fake grounding batches."""
import copy
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def get_config(path: str) -> Config:
    """Load ``configs/<path>`` of the repository."""
    return Config.fromfile(osp.join(REPO_ROOT, 'configs', path))


def tiny_mdetr_config(num_queries: int = 4, embed_dims: int = 32, soft_token_mode: str = 'sentence',
                      aux_decoder: bool = False, with_fusion: bool = True) -> dict:
    """A very small MDETR* (ResNet-18 at 1/8 width, 1+1 transformer layers, 1-layer BERT over SynthRef's
    vocabulary) for fast unit tests, with the same structure as the real configs."""
    head = dict(
        type='MDETRHead', embed_dims=embed_dims,
        num_soft_tokens=2 if soft_token_mode == 'sentence' else 32, soft_token_mode=soft_token_mode)
    layer = dict(embed_dims=embed_dims, num_heads=4, feedforward_channels=64, dropout=0.0)
    cfg = dict(
        type='MDETR', num_queries=num_queries,
        data_preprocessor=dict(type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
        backbone=dict(type='mmdet.ResNet', depth=18, base_channels=8, out_indices=(1, 3),
                      norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False),
        neck=dict(type='LowLevelFusionNeck', in_channels=(16, 64), out_channels=embed_dims, strides=(2, 2),
                  with_fusion=with_fusion),
        language_model=dict(type='HFTextEncoder', max_length=31,
                            model_config=dict(model_type='bert', hidden_size=32, num_hidden_layers=1,
                                              num_attention_heads=2, intermediate_size=64),
                            tokenizer=dict(type='word', vocab='synthref')),
        positional_encoding=dict(num_feats=embed_dims // 2, normalize=True),
        encoder=dict(type='VLTransformerEncoder', num_layers=1, layer_cfg=layer),
        decoder=dict(type='DetrTransformerDecoderSDPA', num_layers=2, layer_cfg=layer),
        bbox_head=head)
    if aux_decoder:
        cfg['aux_decoder'] = dict(decoder=copy.deepcopy(cfg['decoder']), head=copy.deepcopy(head),
                                  queries='constant')
    return cfg


def demo_grounding_batch(batch_size: int = 2, image_shapes: Optional[Sequence[Tuple[int, int]]] = None,
                         texts: Optional[List[str]] = None, num_boxes: int = 1, seed: int = 0) -> dict:
    """A batch in the format the data pipeline produces (before the data preprocessor): uint8 CHW
    ``inputs`` and ``DetDataSample``s with ``text``, ``tokens_positive`` and ``gt_instances``."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    rng = np.random.default_rng(seed)
    image_shapes = image_shapes or [(64, 80)] * batch_size
    texts = texts or ['the small red circle left of the blue square'] * batch_size
    inputs, samples = [], []
    for b, (h, w) in enumerate(image_shapes):
        inputs.append(torch.from_numpy(rng.integers(0, 255, size=(3, h, w), dtype=np.uint8)))
        ds = DetDataSample()
        boxes = []
        for _ in range(num_boxes):
            x1, y1 = rng.uniform(0, w / 2), rng.uniform(0, h / 2)
            boxes.append([x1, y1, x1 + rng.uniform(4, w / 2), y1 + rng.uniform(4, h / 2)])
        boxes = torch.tensor(boxes, dtype=torch.float32).view(-1, 4)
        ds.gt_instances = InstanceData(bboxes=boxes, labels=torch.zeros(len(boxes), dtype=torch.long))
        ds.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), text=texts[b],
                             tokens_positive=[[[0, len(texts[b].split(' left')[0])]]] * len(boxes),
                             ori_gt_bboxes=boxes.numpy(), img_id=b, split='demo'))
        samples.append(ds)
    return dict(inputs=inputs, data_samples=samples)


def tiny_synthref(root: str, num_scenes: int = 8, seed: int = 0, image_size: int = 64) -> str:
    """Generate a few SynthRef scenes per split under ``root`` (for dataset and pipeline tests)."""
    from mmvlg.datasets.synthref import SynthRefConfig, generate_synthref
    cfg = SynthRefConfig(num_scenes=dict(train=num_scenes, val=num_scenes, testA=num_scenes, testB=num_scenes),
                         image_size=image_size, seed=seed)
    return generate_synthref(root, cfg)
