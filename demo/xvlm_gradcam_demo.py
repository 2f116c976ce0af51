"""Grad-CAM of X-VLM's weakly supervised grounding: where the ITM score looks for an expression, and which proposal
it picks (arXiv:2111.08276, Fig. 5 / section 4.2).

The Grad-CAM map of the ITM match logit on the model's ``gradcam_layer`` cross-attention
(``GroundingInferencer.attention_map``, in original-image pixels) is drawn as a heat map beside the image; each
proposal is scored by its in-box sum / ``area ** proposal_alpha`` on that map
(:func:`mmvlg.models.utils.score_proposals`) and the best one is drawn on both panels.

Proposals: ``--proposals x1,y1,x2,y2 ...`` (original-image pixels), or ``--proposal-file`` (a MAttNet-style
detection file, SynthRef's ``scenes_{split}.json`` with ``--box-format xyxy``, or an mmdet results ``.pkl``, see
:func:`mmvlg.datasets.transforms.load_proposal_file`) with ``--image-id``; none: the heat map alone.

Example::

    python demo/xvlm_gradcam_demo.py data/synthref/images/val/000000.png "the small purple triangle" \\
        configs/xvlm/xvlm-rec-weak_vit-tiny_bert-tiny_1xb32-3e_synthref.py work_dirs/.../best.pth \\
        --proposal-file data/synthref/annotations/scenes_val.json --box-format xyxy --image-id 0 --out-file cam.jpg

Prints one JSON line: ``text``, ``bbox`` and ``score`` of the chosen proposal (null without proposals), ``scores``
of all proposals and ``out_file``.
"""
import argparse
import json
import os
import os.path as osp
from typing import List, Optional

import mmcv
import mmengine
import numpy as np
import torch
from mmengine.config import Config, DictAction

from mmvlg.apis import GroundingInferencer
from mmvlg.datasets.transforms import load_proposal_file
from mmvlg.models.utils import score_proposals
from mmvlg.visualization import draw_attention


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Grad-CAM heat map of X-VLM weakly supervised grounding')
    parser.add_argument('image', help='image file')
    parser.add_argument('text', help='referring expression')
    parser.add_argument('config', help='config file (a model with gradcam(), e.g. XVLMWeakGrounding)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-file', required=True, help='where to write the drawing')
    parser.add_argument('--proposals', nargs='+', default=None, metavar='X1,Y1,X2,Y2',
                        help='proposal boxes in original-image pixels')
    parser.add_argument('--proposal-file', default=None, help='proposal file (see load_proposal_file)')
    parser.add_argument('--image-id', default=None, help='the image id in --proposal-file')
    parser.add_argument('--box-format', default='xywh', choices=('xywh', 'xyxy'),
                        help='box format of a JSON --proposal-file (default: xywh, as MAttNet / X-VLM)')
    parser.add_argument('--proposal-alpha', type=float, default=None,
                        help="area exponent of the proposal score (default: the model's proposal_alpha, or 0.5)")
    parser.add_argument('--device', default=None, help='device, e.g. cpu or cuda:0 (default: cuda if available)')
    parser.add_argument('--alpha', type=float, default=0.5, help='weight of the heat map in the overlay')
    parser.add_argument('--min-size', type=int, default=384,
                        help='enlarge smaller images to this longer side for a readable drawing (0: never)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def read_proposals(args: argparse.Namespace) -> Optional[np.ndarray]:
    """(k, 4) x1, y1, x2, y2 proposals from the arguments, or None."""
    if args.proposals and args.proposal_file:
        raise ValueError('give --proposals or --proposal-file, not both')
    if args.proposals:
        boxes = []
        for text in args.proposals:
            values = [float(v) for v in text.split(',')]
            if len(values) != 4:
                raise ValueError(f'--proposals: {text!r} is not x1,y1,x2,y2')
            boxes.append(values)
        return np.asarray(boxes, dtype=np.float32)
    if args.proposal_file:
        if args.image_id is None:
            raise ValueError('--proposal-file needs --image-id')
        proposals = load_proposal_file(args.proposal_file, box_format=args.box_format)
        if str(args.image_id) not in proposals:
            raise KeyError(f'proposal file {args.proposal_file} has no proposals for image {args.image_id}')
        return proposals[str(args.image_id)]['bboxes']
    return None


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    proposals = read_proposals(args)
    inferencer = GroundingInferencer(cfg, args.checkpoint, device=args.device)
    if not callable(getattr(inferencer.model, 'gradcam', None)):
        raise TypeError(f'{type(inferencer.model).__name__} has no gradcam(); use a model such as '
                        'XVLMWeakGrounding')
    heat = inferencer.attention_map(args.image, args.text)  # (H, W) original pixels
    image = mmcv.imfrombytes(mmengine.fileio.get(args.image))  # BGR
    alpha = args.proposal_alpha if args.proposal_alpha is not None else getattr(inferencer.model,
                                                                                 'proposal_alpha', 0.5)
    best, best_score, scores = None, None, []
    if proposals is not None and len(proposals):
        scores = score_proposals(torch.from_numpy(heat), torch.from_numpy(proposals), alpha).tolist()
        k = int(np.argmax(scores))
        best, best_score = proposals[k].tolist(), float(scores[k])
    drawing = draw_attention(image, heat, bboxes=None if best is None else np.asarray([best]),
                             scores=None if best is None else [best_score], text=args.text, alpha=args.alpha,
                             min_size=args.min_size)
    os.makedirs(osp.dirname(osp.abspath(args.out_file)), exist_ok=True)
    mmcv.imwrite(drawing, args.out_file)
    result = dict(text=args.text, bbox=best, score=best_score, scores=scores, out_file=args.out_file)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
