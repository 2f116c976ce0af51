"""Ground one or more referring expressions in an image and draw the best box.

Example::

    python demo/image_demo.py scene.png "the red circle left of the blue square" \\
        configs/mdetr/mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py work_dirs/.../epoch_6.pth \\
        --out-file out.jpg --device cpu --topk 1

Prints the predictions as one JSON line: a list with, per expression, ``text``, ``bboxes`` (x1, y1, x2, y2 in
image pixels, best first) and ``scores``. With several expressions the drawings are put side by side in
``--out-file``.
"""
import argparse
import json
import os
import os.path as osp
from typing import List, Optional

import mmcv
import numpy as np
from mmengine.config import Config, DictAction

from mmvlg.apis import GroundingInferencer


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Referring-expression grounding of an image',
        usage='%(prog)s IMAGE EXPRESSION [EXPRESSION ...] CONFIG CHECKPOINT [options]')
    parser.add_argument('image', help='image file')
    parser.add_argument('texts', nargs='+', metavar='EXPRESSION', help='one or more referring expressions')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-file', help='where to write the drawing (expression, best box in red)')
    parser.add_argument('--device', default=None, help='device, e.g. cpu or cuda:0 (default: cuda if available)')
    parser.add_argument('--topk', type=int, default=1, help='boxes to report (and draw) per expression')
    parser.add_argument('--pred-score-thr', type=float, default=0.0, help='drop boxes scoring lower')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> list:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    inferencer = GroundingInferencer(cfg, args.checkpoint, device=args.device)
    result = inferencer(args.image, list(args.texts), topk=args.topk, pred_score_thr=args.pred_score_thr,
                        return_vis=args.out_file is not None)
    predictions = result['predictions'][0]
    if args.out_file:
        drawings = result['visualization'][0]
        gap = np.full((drawings[0].shape[0], 4, 3), 255, np.uint8)
        panels = [p for d in drawings for p in (d, gap)][:-1]
        out_dir = osp.dirname(osp.abspath(args.out_file))
        os.makedirs(out_dir, exist_ok=True)
        mmcv.imwrite(np.concatenate(panels, axis=1)[..., ::-1], args.out_file)
    print(json.dumps(predictions))
    return predictions


if __name__ == '__main__':
    main()
