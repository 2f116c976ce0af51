import hashlib
import json
import os.path as osp
from typing import Dict, Optional

import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.utils import mkdir_or_exist

from mmvlg.registry import HOOKS


def param_checksum(model: torch.nn.Module, include_buffers: bool = False) -> Dict[str, object]:
    """A bit-exact digest of a model's parameters (and optionally buffers).

    Args:
        model (nn.Module): The model; pass the unwrapped one to compare with a bare model (the names are hashed).
        include_buffers (bool): Also hash the buffers (e.g. BatchNorm running statistics). Defaults to False.

    Returns:
        dict: ``sha256`` (hex digest over the names, dtypes, shapes and bytes in ``named_parameters`` order),
        ``sum`` (the sum of all values in float64, for a human eye) and ``num_tensors``.
    """
    digest = hashlib.sha256()
    total = 0.0
    tensors = list(model.named_parameters())
    if include_buffers:
        tensors += list(model.named_buffers())
    for name, tensor in tensors:
        data = tensor.detach().cpu().contiguous()
        digest.update(f'{name}|{data.dtype}|{tuple(data.shape)}|'.encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
        total += float((data.abs() if data.is_complex() else data).double().sum())
    return dict(sha256=digest.hexdigest(), sum=total, num_tensors=len(tensors))


@HOOKS.register_module()
class ParamChecksumHook(Hook):
    """Log a checksum of the model parameters on every rank and check that data-parallel ranks agree.

    Under ``DistributedDataParallel`` every rank must hold bit-identical parameters after every optimizer
    step (the gradients are all-reduced, the optimizer steps are the same). A rank that drifts (a parameter
    updated outside the optimizer, a non-deterministic rank-dependent branch, a missed all-reduce) trains
    silently wrong; this hook catches it. Buffers are left out by default: MMEngine wraps models with
    ``broadcast_buffers=False``, so BatchNorm running statistics legitimately differ between ranks.

    Each check logs ``sha256``/``sum`` of the rank's parameters, all-gathers the digests when the world size
    is > 1 and reports a mismatch (an error in the log, or an exception when ``strict``). With ``out_dir``
    each rank also writes its last check to ``{out_dir}/param_checksum_rank{rank}.json``.

    Args:
        interval (int): Also check every ``interval`` training iterations; -1 checks only at the end of
            training. Defaults to -1.
        include_buffers (bool): Also hash the buffers. Defaults to False.
        strict (bool): Raise ``RuntimeError`` when the ranks disagree instead of logging an error.
            Defaults to False.
        out_dir (str, optional): Folder of the per-rank JSON files; relative paths are relative to the work
            dir. Defaults to None (no files).
    """

    priority = 'LOW'

    def __init__(self, interval: int = -1, include_buffers: bool = False, strict: bool = False,
                 out_dir: Optional[str] = None) -> None:
        self.interval = interval
        self.include_buffers = include_buffers
        self.strict = strict
        self.out_dir = out_dir

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Check every ``interval`` iterations."""
        if self.interval > 0 and self.every_n_train_iters(runner, self.interval):
            self._check(runner, runner.iter + 1)  # ``runner.iter`` counts this iteration only after the hooks

    def after_train(self, runner) -> None:
        """Check at the end of training."""
        self._check(runner, runner.iter)

    def _check(self, runner, done_iters: int) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        record = param_checksum(model, self.include_buffers)
        rank, world_size = get_dist_info()
        record.update(rank=rank, world_size=world_size, iter=done_iters, epoch=runner.epoch)
        runner.logger.info(f'ParamChecksumHook: rank {rank} iter {done_iters}: sha256 {record["sha256"][:16]} '
                           f'sum {record["sum"]:.8e} ({record["num_tensors"]} tensors)')
        if self.out_dir is not None:
            out_dir = osp.join(runner.work_dir, self.out_dir)
            mkdir_or_exist(out_dir)
            with open(osp.join(out_dir, f'param_checksum_rank{rank}.json'), 'w') as f:
                json.dump(record, f, indent=1)
        if world_size > 1:
            digests = all_gather_object(record['sha256'])
            if len(set(digests)) > 1:
                msg = (f'ParamChecksumHook: the model parameters differ between ranks at iter {done_iters}: '
                       + ', '.join(f'rank {r}: {d[:16]}' for r, d in enumerate(digests)))
                if self.strict:
                    raise RuntimeError(msg)
                runner.logger.error(msg)
