"""Tiny coarse-grained FIBER configs and image-text batches for fast unit tests."""
from typing import List, Optional, Sequence

import numpy as np
import torch

from .fiber import tiny_fiber_backbone_config

DATA_PREPROCESSOR = dict(type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                         bgr_to_rgb=True, pad_size_divisor=32)


def tiny_fiber_coarse_config(itc: bool = True, itm: bool = True, mlm: bool = True, embed_dims: int = 32) -> dict:
    """A very small FIBERCoarse: the tiny fusion backbone (16-wide Swin, 3-layer 32-wide RoBERTa, 2 fused
    layers) reading the last Swin stage, with the chosen heads."""
    backbone = tiny_fiber_backbone_config(out_indices=(3, ))
    return dict(
        type='FIBERCoarse', backbone=backbone, embed_dims=embed_dims, data_preprocessor=DATA_PREPROCESSOR,
        itc_head=dict(type='ITCHead', embed_dims=embed_dims) if itc else None,
        itm_head=dict(type='ITMHead') if itm else None,
        mlm_head=dict(type='MLMHead') if mlm else None)


def tiny_fiber_vqa_config(answers: Sequence[str] = ('yes', 'no', 'red', 'two'), embed_dims: int = 32) -> dict:
    """A very small FIBERVQA over a 4-answer vocabulary."""
    return dict(type='FIBERVQA', backbone=tiny_fiber_backbone_config(out_indices=(3, )), embed_dims=embed_dims,
                data_preprocessor=DATA_PREPROCESSOR, vqa_head=dict(type='VQAHead', answers=list(answers)))


def demo_image_text_batch(texts: Optional[List[str]] = None, img_ids: Optional[Sequence] = None,
                          image_shapes: Optional[Sequence] = None, seed: int = 0, **metainfo) -> dict:
    """A batch as the image-text pipeline packs it (before the data preprocessor): uint8 CHW ``inputs`` and
    ``DetDataSample``s with ``text``, ``img_id``, ``text_id`` and any extra per-sample metainfo lists."""
    from mmdet.structures import DetDataSample
    texts = texts or ['the small red circle', 'a big blue square', 'the green triangle', 'two circles']
    img_ids = list(img_ids) if img_ids is not None else list(range(len(texts)))
    image_shapes = image_shapes or [(48, 48)] * len(texts)
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for b, (text, (h, w)) in enumerate(zip(texts, image_shapes)):
        inputs.append(torch.from_numpy(rng.integers(0, 255, size=(3, h, w), dtype=np.uint8)))
        ds = DetDataSample()
        ds.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), text=text,
                             img_id=img_ids[b], text_id=b, **{k: v[b] for k, v in metainfo.items()}))
        samples.append(ds)
    return dict(inputs=inputs, data_samples=samples)
