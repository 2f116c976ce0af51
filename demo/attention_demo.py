"""Show where the vision-language encoder looks for an expression (SiRi's Fig. 7).

The text-to-image attention of the expression's tokens is upsampled to the image (the padding region left out)
and drawn as a heat map beside the original image, with the model's top-1 box on both. MDETR*: the encoder's
attention (``model.cross_modal_attention``, summed over encoder ``--layers``). FIBER: the cross-attention of the
fused text layers to the image tokens (recorded with forward hooks, the outputs unchanged; ``--layers`` are
fused layers, 0 .. ``num_fusion_layers - 1``), see ``GroundingInferencer.attention_map``.

Example::

    python demo/attention_demo.py scene.png "the red circle left of the blue square" \\
        configs/mdetr/mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py work_dirs/.../epoch_6.pth \\
        --out-file att.jpg --layers 0 1 2

Prints one JSON line: ``text``, ``bbox`` and ``score`` of the top-1 box, ``layers`` and ``out_file``.
"""
import argparse
import json
import os
import os.path as osp
from typing import List, Optional

import mmcv
import mmengine
from mmengine.config import Config, DictAction

from mmvlg.apis import GroundingInferencer
from mmvlg.visualization import draw_attention


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Encoder cross-modal attention of an expression on an image')
    parser.add_argument('image', help='image file')
    parser.add_argument('text', help='referring expression')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-file', required=True, help='where to write the drawing')
    parser.add_argument('--layers', type=int, nargs='+', default=None,
                        help='encoder (MDETR*) or fused (FIBER) layers whose attention is summed (default: all)')
    parser.add_argument('--device', default=None, help='device, e.g. cpu or cuda:0 (default: cuda if available)')
    parser.add_argument('--alpha', type=float, default=0.5, help='weight of the heat map in the overlay')
    parser.add_argument('--min-size', type=int, default=384,
                        help='enlarge smaller images to this longer side for a readable drawing (0: never)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    inferencer = GroundingInferencer(cfg, args.checkpoint, device=args.device)
    attention = inferencer.attention_map(args.image, args.text, layers=args.layers)
    pred = inferencer(args.image, args.text, topk=1)['predictions'][0][0]
    image = mmcv.imfrombytes(mmengine.fileio.get(args.image))  # BGR
    drawing = draw_attention(image, attention, bboxes=pred['bboxes'], scores=pred['scores'], text=args.text,
                             alpha=args.alpha, min_size=args.min_size)
    os.makedirs(osp.dirname(osp.abspath(args.out_file)), exist_ok=True)
    mmcv.imwrite(drawing, args.out_file)
    result = dict(text=args.text, bbox=pred['bboxes'][0] if pred['bboxes'] else None,
                  score=pred['scores'][0] if pred['scores'] else None, layers=args.layers, out_file=args.out_file)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
