"""Training and inference throughput, peak memory and size of a grounding model.

Builds the model of a config (random weights unless ``--checkpoint``; nothing is downloaded: the ``init_cfg``s
are set aside and ``init_weights`` is not called) and times, on a synthetic batch of ``--batch`` images of
``--shape`` with one expression each (or on the config's real train dataloader with ``--real-data``):

* ``--mode train``: whole training steps: data preprocessor, forward with the losses (Hungarian matching
  included), backward, gradient clipping and the optimizer step of the config's ``optim_wrapper``;
* ``--mode infer``: data preprocessor and ``model.predict`` under ``torch.no_grad()``.

Examples::

    python tools/analysis_tools/benchmark.py configs/mdetr/mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py \\
        --mode train --batch 32 --shape 128 128 --iters 20 --device cpu
    python tools/analysis_tools/benchmark.py configs/mdetr/mdetr-star_r101_roberta-base_4xb18-55e_refcoco.py \\
        --mode infer --batch 16 --shape 480 640 --amp --device cuda \\
        --cfg-options model.language_model.name_or_path=/path/to/roberta-base

Prints one JSON object: config, mode, device, batch, shape, amp, iters, images_per_s, sec_per_iter,
peak_memory_gib and peak_memory_kind (``cuda_max_memory_allocated`` on GPU; ``cpu_peak_rss``, the peak
resident memory of the whole process, on CPU), trainable_params_m and torch.
"""
import argparse
import contextlib
import copy
import json
import resource
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint

from mmvlg.registry import MODELS
from mmvlg.testing import demo_grounding_batch
from mmvlg.utils import register_all_modules

DEFAULT_TEXT = 'the small red circle left of the blue square'
DEFAULT_OPTIM_WRAPPER = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Benchmark training/inference speed and memory of a model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', help='checkpoint to load (default: random weights)')
    parser.add_argument('--mode', choices=['train', 'infer'], default='infer', help='what to time')
    parser.add_argument('--batch', type=int, default=16, help='images per step')
    parser.add_argument('--shape', type=int, nargs=2, default=[480, 640], metavar=('H', 'W'),
                        help='synthetic image size')
    parser.add_argument('--iters', type=int, default=20, help='timed steps')
    parser.add_argument('--warmup', type=int, default=5, help='untimed steps before')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast (torch.autocast, dtype=bfloat16)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default=None,
                        help='default: cuda if available, else cpu')
    parser.add_argument('--text', default=DEFAULT_TEXT, help='the expression of every synthetic sample')
    parser.add_argument('--real-data', action='store_true',
                        help="time the config's train dataloader end-to-end (decoding included) instead of a "
                        'synthetic batch; --batch sets its batch size, --shape is ignored')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.language_model.name_or_path=/local/folder')
    args = parser.parse_args(argv)
    for name in ('batch', 'iters'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1')
    if args.warmup < 0:
        parser.error('--warmup must be >= 0')
    return args


def set_init_cfgs_aside(cfg: Any) -> Any:
    """Set every ``init_cfg`` (and ``pretrained``) of a model config to None, recursively, in place, so
    that nothing (e.g. ``torchvision://`` weights) is fetched."""
    if isinstance(cfg, dict):
        for key in list(cfg.keys()):
            if key in ('init_cfg', 'pretrained'):
                cfg[key] = None
            else:
                set_init_cfgs_aside(cfg[key])
    elif isinstance(cfg, (list, tuple)):
        for item in cfg:
            set_init_cfgs_aside(item)
    return cfg


def build_model(cfg: Config, checkpoint: Optional[str], device: str) -> torch.nn.Module:
    """Build ``cfg.model`` without pretrained weights (random init, or ``checkpoint``) on ``device``."""
    model_cfg = set_init_cfgs_aside(copy.deepcopy(cfg.model))
    try:
        model = MODELS.build(model_cfg)
    except OSError as err:  # a Hugging Face name that is neither a local folder nor cached
        lm = model_cfg.get('language_model', {})
        raise RuntimeError(
            f'could not build the model ({err}). If the language model name_or_path='
            f'{lm.get("name_or_path")!r} is not available locally, point it to a local folder with '
            '--cfg-options model.language_model.name_or_path=/path/to/model') from err
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    return model.to(device)


def synthetic_batch(batch: int, shape: List[int], text: str, seed: int) -> dict:
    """``batch`` random images of ``shape`` (H, W) with one expression and one box (inside the image) each,
    as the data pipeline produces them; the expression is also the box's region text (``region_texts``,
    ``region_is_image``) for region-text models."""
    data = demo_grounding_batch(batch_size=batch, image_shapes=[tuple(shape)] * batch, texts=[text] * batch,
                                num_boxes=1, seed=seed)
    for ds in data['data_samples']:  # the box's text too, for region-text models (X-VLM's interface 2)
        ds.set_metainfo(dict(region_texts=[text] * len(ds.gt_instances),
                             region_is_image=[False] * len(ds.gt_instances)))
    return data


def real_batches(cfg: Config, batch: int, seed: int) -> Iterator[dict]:
    """Batches of the config's train dataloader (batch size ``batch``), restarted when exhausted."""
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg['batch_size'] = batch
    if loader_cfg.get('num_workers', 0) == 0:
        loader_cfg['persistent_workers'] = False
    loader = Runner.build_dataloader(loader_cfg, seed=seed)
    while True:
        yielded = False
        for data in loader:
            yielded = True
            yield data
        if not yielded:
            raise RuntimeError('the train dataloader is empty')


def make_step(model: torch.nn.Module, cfg: Config, mode: str, autocast: Callable) -> Callable[[dict], None]:
    """One timed step on a batch as the dataloader gives it."""
    if mode == 'infer':
        model.eval()

        def infer_step(data: dict) -> None:
            with torch.no_grad(), autocast():
                data = model.data_preprocessor(data, False)
                model.predict(data['inputs'], data['data_samples'])
        return infer_step

    model.train()
    optim_cfg = cfg.get('optim_wrapper')
    if optim_cfg is None:
        print(f'no optim_wrapper in the config: using {DEFAULT_OPTIM_WRAPPER}', file=sys.stderr)
        optim_cfg = DEFAULT_OPTIM_WRAPPER
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(optim_cfg))

    def train_step(data: dict) -> None:
        data = model.data_preprocessor(data, True)
        with autocast():  # the forward pass only; backward runs in the dtypes autocast chose
            losses = model(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        optim_wrapper.update_params(loss)  # backward, clip_grad (from the config), step, zero_grad
    return train_step


def peak_memory(device: str) -> Dict[str, Any]:
    if device == 'cuda':
        return dict(peak_memory_gib=torch.cuda.max_memory_allocated() / 2**30,
                    peak_memory_kind='cuda_max_memory_allocated')
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_bytes = rss if sys.platform == 'darwin' else rss * 1024  # bytes on macOS, KiB on Linux
    return dict(peak_memory_gib=rss_bytes / 2**30, peak_memory_kind='cpu_peak_rss')


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda but CUDA is not available')
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmvlg'))
    torch.manual_seed(args.seed)

    model = build_model(cfg, args.checkpoint, device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    autocast = (lambda: torch.autocast(device_type=device, dtype=torch.bfloat16)) if args.amp \
        else contextlib.nullcontext
    step = make_step(model, cfg, args.mode, autocast)
    if args.real_data:
        source = real_batches(cfg, args.batch, args.seed)
    else:
        fixed = synthetic_batch(args.batch, args.shape, args.text, args.seed)
        source = iter(lambda: fixed, None)

    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step(next(source))
    sync()
    images = 0
    start = time.perf_counter()
    for _ in range(args.iters):
        data = next(source)
        images += len(data['inputs'])
        step(data)
    sync()
    elapsed = time.perf_counter() - start

    result = dict(config=args.config, mode=args.mode, device=device, batch=args.batch,
                  shape=None if args.real_data else list(args.shape), real_data=args.real_data, amp=args.amp,
                  warmup=args.warmup, iters=args.iters, images_per_s=images / elapsed,
                  sec_per_iter=elapsed / args.iters, **peak_memory(device), trainable_params_m=trainable / 1e6,
                  torch=torch.__version__)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
