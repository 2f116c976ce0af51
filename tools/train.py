# Train a model from an mmvlg config (an MMDetection-style entry point).
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmvlg.utils import register_all_modules
from mmvlg.utils.config_check import check_cfg_options, check_config, has_hook
from mmvlg.utils.dist_utils import setup_cpu_distributed, teardown_distributed


def parse_args():
    parser = argparse.ArgumentParser(description='Train a grounding model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='enable automatic mixed precision (bf16 on CPU, '
                        'fp16/bf16 per optim_wrapper.dtype on GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the lr by the total batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or from the latest one in the work dir if none given')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_epochs=3')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        # An unknown top-level key would be ignored by the runner without a message (e.g. train_cfgg.max_epochs).
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp and cfg.optim_wrapper.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
        import torch
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('dtype', 'float16' if torch.cuda.is_available() else 'bfloat16')
        if cfg.optim_wrapper.dtype == 'float16':
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs "auto_scale_lr.base_batch_size" in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    # (Checkpoints are sanitized for weights_only loading on save by mmvlg itself: no SafeCheckpointHook needed.)
    cfg.custom_hooks = list(cfg.get('custom_hooks', None) or [])
    # Random states in every checkpoint and per-sample seeding of the data: a resumed run is bit-identical.
    if not has_hook(cfg.custom_hooks, 'RandomStateHook'):
        cfg.custom_hooks = [*cfg.custom_hooks, dict(type='RandomStateHook')]
    # load_from: say loudly which weights the checkpoint did not fill (CheckpointKeysHook).
    if not has_hook(cfg.custom_hooks, 'CheckpointKeysHook'):
        cfg.custom_hooks = [*cfg.custom_hooks, dict(type='CheckpointKeysHook')]
    # Misspelled hook arguments and near misses of runner keys stop here, not after an epoch of training.
    check_config(cfg)
    # Without CUDA a launcher means CPU processes: Gloo instead of NCCL, DDP without device_ids.
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()
    teardown_distributed()


if __name__ == '__main__':
    main()
