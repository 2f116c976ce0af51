"""Size and speed of FIBER's fusion in the backbone against the same Swin + RoBERTa without fusion.

Builds a :class:`~mmvlg.models.backbones.FIBERBackbone` with random weights (nothing is downloaded; RoBERTa's
architecture is built from its config) and reports

* parameters: all, the fusion's (the gated cross-attentions) and the uni-modal backbones' (Swin + RoBERTa);
* seconds per iteration on a synthetic batch, of the same model with fusion on (fusion encoder) and off
  (dual encoder: exactly the uni-modal Swin and RoBERTa), for ``--mode infer`` (forward under no_grad)
  and/or ``--mode train`` (forward + backward of a dummy loss on every output).

Presets (``--size``): ``base`` is the paper's (Swin-B, window 12, + RoBERTa-base, fusion in the top 6
layers); ``small`` is Swin-T + a 6-layer, 256-wide RoBERTa with fusion in the top 6 layers (for CPUs);
``tiny`` is the unit tests' model. Examples::

    python tools/analysis_tools/fiber_backbone_benchmark.py --size base --params-only
    OMP_NUM_THREADS=1 python tools/analysis_tools/fiber_backbone_benchmark.py --size small \\
        --batch 2 --shape 224 224 --text-len 16 --iters 10 --mode infer train

Prints one JSON object.
"""
import argparse
import json
import statistics
import sys
import time
from typing import Dict, List, Optional

import torch

from mmvlg.registry import MODELS
from mmvlg.testing import tiny_fiber_backbone_config
from mmvlg.utils import register_all_modules

WORDS = ('the small red circle left of the big blue square above a green triangle near the yellow star '
         'in the middle of the image').split()


def _roberta(hidden: int, layers: int, heads: int, ffn: int, vocab_size: int = 50265) -> dict:
    # The real model is ``dict(type='HFTextEncoder', name_or_path='roberta-base')``; the architecture of a
    # config with the same sizes is built here (word tokenizer over a tiny vocabulary, full-size embeddings).
    return dict(type='HFTextEncoder', max_length=256, tokenizer=dict(type='word', vocab=list(WORDS)),
                model_config=dict(model_type='roberta', vocab_size=vocab_size, hidden_size=hidden,
                                  num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
                                  max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                                  pad_token_id=0))


def backbone_config(size: str, num_fusion_layers: int = 6) -> dict:
    """The FIBER backbone of a preset."""
    if size == 'tiny':
        return tiny_fiber_backbone_config()
    if size == 'small':
        visual = dict(type='mmdet.SwinTransformer', embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                      window_size=7, drop_path_rate=0.0, out_indices=(1, 2, 3))
        text = _roberta(256, 6, 4, 1024)
    elif size == 'base':
        visual = dict(type='mmdet.SwinTransformer', pretrain_img_size=384, embed_dims=128, depths=(2, 2, 18, 2),
                      num_heads=(4, 8, 16, 32), window_size=12, drop_path_rate=0.0, out_indices=(1, 2, 3))
        text = _roberta(768, 12, 12, 3072)
    else:
        raise ValueError(f'unknown size {size!r}')
    return dict(type='FIBERBackbone', visual=visual, language_model=text, num_fusion_layers=num_fusion_layers)


def count_params(model: torch.nn.Module) -> Dict[str, float]:
    total = sum(p.numel() for p in model.parameters())
    fusion = sum(p.numel() for n, p in model.named_parameters() if n.startswith(('i2t_attns.', 't2i_attns.')))
    swin = sum(p.numel() for p in model.visual.parameters())
    text = sum(p.numel() for p in model.language_model.parameters())
    return dict(total_m=total / 1e6, fusion_m=fusion / 1e6, swin_m=swin / 1e6, text_m=text / 1e6,
                unimodal_m=(swin + text) / 1e6)


def time_iters(model, img, texts, fusion: bool, mode: str, iters: int, warmup: int) -> List[float]:
    model.train(mode == 'train')
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        if mode == 'train':
            feats, text = model(img, texts, fusion=fusion)
            loss = sum(f.float().square().mean() for f in feats) + text['embeds'].float().square().mean()
            loss.backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(img, texts, fusion=fusion)
        if img.is_cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Parameters and time per iteration of the FIBER backbone')
    parser.add_argument('--size', choices=['tiny', 'small', 'base'], default='small')
    parser.add_argument('--num-fusion-layers', type=int, default=6)
    parser.add_argument('--params-only', action='store_true', help='only build and count')
    parser.add_argument('--mode', nargs='+', choices=['infer', 'train'], default=['infer', 'train'])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'))
    parser.add_argument('--text-len', type=int, default=16, help='words per text')
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    register_all_modules()
    torch.manual_seed(args.seed)
    cfg = backbone_config(args.size)
    if args.size != 'tiny':
        cfg['num_fusion_layers'] = args.num_fusion_layers
    model = MODELS.build(cfg)  # random weights: no init_weights, nothing to download
    result = dict(size=args.size, num_fusion_layers=model.num_fusion_layers, params=count_params(model),
                  torch=torch.__version__, threads=torch.get_num_threads())
    if args.params_only:
        print(json.dumps(result, indent=1))
        return result
    model.to(args.device)
    img = torch.randn(args.batch, 3, *args.shape, device=args.device)
    texts = [' '.join(WORDS[(b + i) % len(WORDS)] for i in range(args.text_len)) for b in range(args.batch)]
    result.update(device=args.device, batch=args.batch, shape=list(args.shape), text_len=args.text_len,
                  iters=args.iters, sec_per_iter={})
    for mode in args.mode:
        for fusion in (False, True):
            ts = time_iters(model, img, texts, fusion, mode, args.iters, args.warmup)
            key = f'{mode}_{"fusion" if fusion else "no_fusion"}'
            result['sec_per_iter'][key] = dict(median=statistics.median(ts), min=min(ts))
        off, on = (result['sec_per_iter'][f'{mode}_{k}']['median'] for k in ('no_fusion', 'fusion'))
        result['sec_per_iter'][f'{mode}_fusion_overhead'] = on / off - 1
    print(json.dumps(result, indent=1))
    return result


if __name__ == '__main__':
    main(sys.argv[1:])
