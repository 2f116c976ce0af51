"""Run a config's data pipeline on its data set and draw the samples: the image, its text (expression, caption
or question) and what the data set has to draw: boxes (grounding), annotators' answers (VQA).

What is drawn is what the model receives: the image after the pipeline (flipped, cropped, resized), the
expression after it (a flip swaps "left" and "right") and the ground-truth boxes in the coordinates of that
image. For the train phase these are ``gt_instances`` (loaded before the augmentations); for val/test, whose
pipelines load the boxes for the metric (``ori_gt_bboxes``, in original pixels), the boxes are scaled by the
sample's ``scale_factor``. Caption and VQA samples have no boxes. Region-text samples (X-VLM) list each box's
text, numbered in box order; an NLVR2 pair is drawn as its two images side by side with the statement and label.
Each sample is printed as one line with its flip state and text (and answers).

Usage::

    python tools/analysis_tools/browse_dataset.py CONFIG [--output-dir DIR] [--not-show] [--show-interval S]
        [--max-samples N] [--phase train|val|test] [--cfg-options KEY=VALUE ...]
"""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from mmvlg.registry import DATASETS, VISUALIZERS
from mmvlg.utils import register_all_modules

DEFAULT_VISUALIZER = dict(type='GroundingVisualizer', name='browse_visualizer')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Browse a grounding data set after its pipeline')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--output-dir', default=None, help='write the drawn samples to this folder')
    parser.add_argument('--not-show', action='store_true', help='do not open a window')
    parser.add_argument('--show-interval', type=float, default=2, help='seconds per shown sample')
    parser.add_argument('--max-samples', type=int, default=None, help='stop after this many samples')
    parser.add_argument('--phase', default='train', choices=['train', 'val', 'test'],
                        help='which dataloader\'s data set and pipeline to browse')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_dataloader.dataset.data_root=/tmp/x')
    return parser.parse_args(argv)


def boxes_in_image(data_sample, phase: str) -> torch.Tensor:
    """Ground-truth boxes (n, 4) in the coordinates of the packed image (see the module docstring)."""
    if phase == 'train' or 'ori_gt_bboxes' not in data_sample:
        if 'gt_instances' not in data_sample or 'bboxes' not in data_sample.gt_instances:
            return torch.zeros(0, 4)  # a caption / VQA sample: no box
        boxes = data_sample.gt_instances.bboxes
        return torch.as_tensor(getattr(boxes, 'tensor', boxes)).reshape(-1, 4).float()  # BaseBoxes or tensor
    boxes = torch.as_tensor(np.asarray(data_sample.ori_gt_bboxes), dtype=torch.float32).reshape(-1, 4)
    sx, sy = data_sample.metainfo.get('scale_factor', (1.0, 1.0))
    return boxes * boxes.new_tensor([sx, sy, sx, sy])


def drawable_sample(data_sample, phase: str):
    """A copy of the packed sample whose only ground truth is the boxes in packed-image coordinates (the
    visualizer would otherwise prefer ``ori_gt_bboxes``, in original pixels)."""
    from mmdet.structures import DetDataSample
    meta = {k: v for k, v in data_sample.metainfo.items() if k != 'ori_gt_bboxes'}
    if meta.get('region_texts'):  # X-VLM region-text: each box's text, numbered in box order
        regions = '; '.join(f'[{k}] {t}' for k, t in enumerate(meta['region_texts']))
        meta['text'] = f'{meta.get("text", "")} | regions: {regions}'.lstrip(' |')
    out = DetDataSample(metainfo=meta)
    boxes = boxes_in_image(data_sample, phase)
    out.gt_instances = InstanceData(bboxes=boxes, labels=torch.zeros(len(boxes), dtype=torch.long))
    return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmvlg'))
    loader_key = f'{args.phase}_dataloader'
    if loader_key not in cfg:
        raise KeyError(f'{args.config} has no {loader_key}')
    dataset = DATASETS.build(cfg[loader_key].dataset)
    vis_cfg = cfg.get('visualizer', None) or DEFAULT_VISUALIZER
    vis_cfg = dict(vis_cfg, name='browse_visualizer', vis_backends=None)
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset.metainfo
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)

    num = len(dataset) if args.max_samples is None else min(args.max_samples, len(dataset))
    for i in range(num):
        item = dataset[i]
        packed = item['data_samples']
        if isinstance(packed, (list, tuple)):  # an NLVR2 pair (PackNLVR2Inputs): the two images side by side
            imgs = [t.permute(1, 2, 0).numpy()[..., ::-1] for t in item['inputs']]
            height = max(im.shape[0] for im in imgs)
            img = np.concatenate([np.pad(im, ((0, height - im.shape[0]), (0, 0), (0, 0))) for im in imgs], axis=1)
            packed = packed[0].clone()
            packed.set_metainfo(dict(text=f'{packed.text} [label: {bool(packed.metainfo.get("label"))}]'))
            packed.gt_instances = InstanceData()
        else:
            img = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1]  # CHW BGR -> HWC RGB
        name = f'{i:05d}_{packed.metainfo.get("img_id", i)}_{osp.basename(packed.img_path)}'
        name = osp.splitext(name)[0] + '.jpg'
        out_file = osp.join(args.output_dir, name) if args.output_dir else None
        visualizer.add_datasample(name, img, drawable_sample(packed, args.phase), draw_pred=False,
                                  show=not args.not_show, wait_time=args.show_interval, out_file=out_file)
        text, orig_text = packed.metainfo.get('text', ''), dataset.get_data_info(i).get('text', '')
        answers = packed.metainfo.get('answers')
        answers = [a['answer'] if isinstance(a, dict) else a for a in answers] if answers else None
        print(f'[browse] {i}: {out_file or name} flip={bool(packed.metainfo.get("flip", False))} text={text!r}'
              + (f' (original: {orig_text!r})' if orig_text != text else '')
              + (f' answers={answers!r}' if answers else '')
              + (f' regions={packed.region_texts!r}' if packed.metainfo.get('region_texts') else ''), flush=True)


if __name__ == '__main__':
    main()
