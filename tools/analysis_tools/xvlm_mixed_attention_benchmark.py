"""Memory and time of X-VLM's mixed attention against running each region as a separate image.

For B images with R regions each, both ways give the same outputs (the script checks it):

* **mixed attention** (:meth:`~mmvlg.models.backbones.XVLMViT.forward_regions`): every image runs the first
  ``depth - local_attn_depth`` blocks once, then its full copy and its R region copies (key mask = [CLS] + the
  patches of the box) run the last ``local_attn_depth`` blocks: B sequences, then B * (1 + R);
* **separate images** (the naive way): each region is one more image in the batch, so B * (1 + R) sequences run
  all blocks (a region's sequence has the same key mask in the last blocks).

Each iteration is a forward and a backward of a dummy loss on all output tokens (``--mode infer``: forward under
``no_grad``). Reported, side by side: parameters, peak memory of the tensors allocated during an iteration
(activations and gradients; CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated before the
iteration; CPU: the peak of the running sum of the allocations recorded by the PyTorch profiler, at operator
granularity) and the median seconds per iteration. The paper reports that mixed attention saves 50% GPU memory.

Presets (``--arch``): ``tiny`` (the unit tests' 32-px model), ``small`` (default: 6 blocks of width 192 at
128 px, 2 with mixed attention) and ``base`` (ViT-B/16 at 224 px, the last 4 of 12 blocks mixed, the paper's);
or ``--config`` an mmvlg config whose model holds an ``XVLMViT``. Random weights, nothing is downloaded::

    python tools/analysis_tools/xvlm_mixed_attention_benchmark.py --arch base --batch 2 --regions 4 --iters 3

Prints a markdown table (``--json``: one JSON object instead).
"""
import argparse
import itertools
import json
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch

from mmvlg.models.utils import region_mask_from_boxes
from mmvlg.registry import MODELS
from mmvlg.utils import register_all_modules

ARCHS = {
    'tiny': dict(img_size=32, patch_size=8, embed_dims=32, depth=4, num_heads=2, local_attn_depth=2),
    'small': dict(img_size=128, patch_size=16, embed_dims=192, depth=6, num_heads=3, local_attn_depth=2),
    'base': dict(img_size=224, patch_size=16, embed_dims=768, depth=12, num_heads=12, local_attn_depth=4),
}


def _find_vit(cfg) -> Optional[dict]:
    if isinstance(cfg, dict):
        if cfg.get('type') in ('XVLMViT', 'mmvlg.XVLMViT'):
            return cfg
        values = cfg.values()
    elif isinstance(cfg, (list, tuple)):
        values = cfg
    else:
        return None
    for v in values:
        found = _find_vit(v)
        if found is not None:
            return found
    return None


def encoder_config(arch: str = 'small', config: Optional[str] = None) -> dict:
    """The ``XVLMViT`` config of a preset, or the first one inside ``config``'s ``model``."""
    if config is not None:
        from mmengine.config import Config
        found = _find_vit(Config.fromfile(config).to_dict().get('model'))
        if found is None:
            raise ValueError(f'{config}: no XVLMViT (type="XVLMViT") in the model config')
        cfg = dict(found)
        cfg['type'] = 'XVLMViT'
    elif arch in ARCHS:
        cfg = dict(type='XVLMViT', **ARCHS[arch])
    else:
        raise ValueError(f'unknown --arch {arch!r}: one of {sorted(ARCHS)}')
    cfg.update(pretrained=None, init_cfg=None, drop_rate=0., attn_drop_rate=0., drop_path_rate=0.)
    return cfg


def random_boxes(num: int, generator: torch.Generator, min_size: float = 0.1) -> torch.Tensor:
    """(num, 4) normalized x1, y1, x2, y2 with sides >= ``min_size``."""
    wh = min_size + (1 - min_size) * torch.rand(num, 2, generator=generator)
    xy = (1 - wh) * torch.rand(num, 2, generator=generator)
    return torch.cat([xy, xy + wh], 1).clamp(0, 1)


def mixed(model, images, boxes, image_index) -> List[torch.Tensor]:
    out = model.forward_regions(images, boxes, image_index)
    return [out['image'], out['region']]


def separate(model, images, boxes, image_index) -> List[torch.Tensor]:
    """Every region as one more image: B * (1 + R) sequences through all blocks."""
    x, grid_hw = model.embed(torch.cat([images, images[image_index]], 0))
    mask = region_mask_from_boxes(boxes, grid_hw)
    b = images.size(0)
    split = model.depth - model.local_attn_depth
    x = model.forward_blocks(x, 0, split)
    x = model.forward_blocks(x, split, None, torch.cat([mask.new_ones(b, mask.size(1)), mask], 0))
    x = model.norm(x)
    return [x[:b], x[b:]]


def _iteration(fn: Callable, model, inputs, train: bool) -> None:
    if train:
        loss = sum(t.float().square().mean() for t in fn(model, *inputs))
        loss.backward()
        model.zero_grad(set_to_none=True)
    else:
        with torch.no_grad():
            fn(model, *inputs)


def peak_memory(fn: Callable, model, inputs, train: bool) -> int:
    """Bytes: peak of the tensors allocated during one iteration, above what existed before it."""
    device = inputs[0].device
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        _iteration(fn, model, inputs, train)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _iteration(fn, model, inputs, train)
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    return max(itertools.accumulate((e.self_cpu_memory_usage for e in events), initial=0))


def seconds(fns: List[Callable], model, inputs, train: bool, iters: int, warmup: int) -> List[List[float]]:
    """Seconds per iteration of each function, the functions interleaved so that they share the machine's load."""
    times = [[] for _ in fns]
    for i in range(warmup + iters):
        for j, fn in enumerate(fns):
            if inputs[0].is_cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            _iteration(fn, model, inputs, train)
            if inputs[0].is_cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times[j].append(time.perf_counter() - t0)
    return times


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='X-VLM mixed attention vs one image per region: memory and time')
    parser.add_argument('--arch', choices=sorted(ARCHS), default='small')
    parser.add_argument('--config', help='an mmvlg config whose model holds an XVLMViT (instead of --arch)')
    parser.add_argument('--batch', type=int, default=2, help='images B')
    parser.add_argument('--regions', type=int, default=4, help='regions R per image')
    parser.add_argument('--img-size', type=int, help='input size (default: the encoder\'s img_size)')
    parser.add_argument('--mode', choices=['train', 'infer'], default='train',
                        help='train: forward + backward; infer: forward under no_grad')
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', action='store_true', help='print one JSON object instead of the table')
    return parser.parse_args(argv)


def markdown_table(result: dict) -> str:
    b, r = result['batch'], result['regions']
    lines = [
        f'X-VLM ViT ({result["arch"]}: width {result["embed_dims"]}, {result["depth"]} blocks, last '
        f'{result["local_attn_depth"]} mixed; {result["img_size"]} px), {b} images x {r} regions, '
        f'{result["mode"]} (forward{" + backward" if result["mode"] == "train" else ""}), {result["device"]}, '
        f'{result["iters"]} iterations, torch {result["torch"]}, {result["threads"]} threads',
        '',
        '| method | sequences per block (first / last blocks) | params (M) | peak memory (MiB) | time / iter (s) |',
        '|---|---|---|---|---|',
    ]
    for row in result['rows']:
        lines.append(f'| {row["method"]} | {row["sequences"]} | {result["params_m"]:.2f} | '
                     f'{row["peak_memory_mib"]:.1f} | {row["sec_per_iter"]:.4f} |')
    s = result['saving']
    lines += ['', f'mixed attention vs separate images: {100 * s["memory"]:.0f}% less memory, '
              f'{100 * s["time"]:.0f}% less time; max |difference| of the outputs {result["max_abs_diff"]:.2e}']
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    if args.batch < 1 or args.regions < 0 or args.iters < 1:
        raise ValueError('--batch >= 1, --regions >= 0 and --iters >= 1 are required')
    register_all_modules()
    torch.manual_seed(args.seed)
    cfg = encoder_config(args.arch, args.config)
    model = MODELS.build(cfg).to(args.device)
    model.train(args.mode == 'train')
    size = args.img_size or model.grid_hw[0] * model.patch_size
    gen = torch.Generator().manual_seed(args.seed)
    images = torch.randn(args.batch, 3, size, size, generator=gen).to(args.device)
    boxes = random_boxes(args.batch * args.regions, gen).to(args.device)
    image_index = torch.arange(args.batch).repeat_interleave(args.regions).to(args.device)
    inputs = (images, boxes, image_index)
    with torch.no_grad():
        a, b = mixed(model, *inputs), separate(model, *inputs)
        diff = max(float((x - y).abs().max()) if x.numel() else 0. for x, y in zip(a, b))
    del a, b
    train = args.mode == 'train'
    n_img, n_all = args.batch, args.batch * (1 + args.regions)
    split = model.depth - model.local_attn_depth
    methods = (('mixed attention', mixed, f'{n_img} / {n_all}'),
               ('separate images (naive)', separate, f'{n_all} / {n_all}'))
    mems = []
    for _, fn, _ in methods:
        _iteration(fn, model, inputs, train)  # warm the allocator and the kernels
        mems.append(peak_memory(fn, model, inputs, train))
    times = seconds([fn for _, fn, _ in methods], model, inputs, train, args.iters, args.warmup)
    rows = [dict(method=name, sequences=seqs, peak_memory_mib=mem / 2**20, sec_per_iter=statistics.median(ts),
                 sec_min=min(ts)) for (name, _, seqs), mem, ts in zip(methods, mems, times)]
    result = dict(arch=args.config or args.arch, embed_dims=model.embed_dims, depth=model.depth,
                  local_attn_depth=model.local_attn_depth, first_blocks=split, img_size=size, batch=args.batch,
                  regions=args.regions, mode=args.mode, device=args.device, iters=args.iters,
                  torch=torch.__version__, threads=torch.get_num_threads(),
                  params_m=sum(p.numel() for p in model.parameters()) / 1e6, rows=rows, max_abs_diff=diff,
                  saving=dict(memory=1 - rows[0]['peak_memory_mib'] / max(rows[1]['peak_memory_mib'], 1e-12),
                              time=1 - rows[0]['sec_per_iter'] / max(rows[1]['sec_per_iter'], 1e-12)))
    print(json.dumps(result, indent=1) if args.json else markdown_table(result))
    return result


if __name__ == '__main__':
    main(sys.argv[1:])
