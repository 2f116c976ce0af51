# Evaluate a checkpoint on the test set of an mmvlg config.
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
    parser = argparse.ArgumentParser(description='Test (and evaluate) a grounding model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation results')
    parser.add_argument('--out', help='dump the predictions and metrics of every evaluator to this prefix: '
                        'PREFIX.refexp.json (REC), PREFIX.flickr.json (phrase grounding), PREFIX.retrieval.json '
                        '(ranked lists per query), PREFIX.vqa.json (VQA v2 results format), mmdet\'s COCO files')
    parser.add_argument('--show', action='store_true', help='show prediction results in a window')
    parser.add_argument('--show-dir', help='draw predictions (top-1, red) and ground truth (green) with the '
                        'expression into this folder (relative to the work dir)')
    parser.add_argument('--wait-time', type=float, default=2, help='interval of show (s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
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
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        hook = cfg.default_hooks.visualization
        hook['draw'] = True
        if args.show:
            hook['show'] = True
            hook['wait_time'] = args.wait_time
        if args.show_dir:
            hook['test_out_dir'] = args.show_dir
    if args.out is not None:
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        for ev in evaluators:
            ev['outfile_prefix'] = args.out
    # A checkpoint that does not fit the model (beyond CheckpointKeysHook's allow-lists) is an error.
    if not has_hook(cfg.get('custom_hooks', None), 'CheckpointKeysHook'):
        cfg.custom_hooks = [*(cfg.get('custom_hooks', None) or []), dict(type='CheckpointKeysHook')]
    check_config(cfg)
    # Without CUDA a launcher means CPU processes: Gloo instead of NCCL, DDP without device_ids.
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.test()
    teardown_distributed()


if __name__ == '__main__':
    main()
