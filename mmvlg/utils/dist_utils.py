"""Distributed training on machines without CUDA.

MMEngine's ``init_dist`` always calls ``torch.cuda.set_device`` and the default config asks for the NCCL
backend, and ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to ``DistributedDataParallel``, which
DDP refuses for a CPU module. :func:`setup_cpu_distributed` makes ``tools/dist_train.sh CONFIG 2`` (and
``--launcher slurm/mpi``) work on CPU with the Gloo backend; on a machine with CUDA it changes nothing.
"""
import datetime
import os
import subprocess
from typing import Any, Optional

import torch
import torch.distributed as torch_dist


def _set_slurm_env(port: Optional[int] = None) -> None:
    """Fill the ``env://`` variables of ``torch.distributed`` from SLURM's (as MMEngine does for GPUs)."""
    proc_id = int(os.environ['SLURM_PROCID'])
    os.environ['RANK'] = str(proc_id)
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        node_list = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')


def _set_mpi_env() -> None:
    """Fill the ``env://`` variables of ``torch.distributed`` from Open MPI's."""
    os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
    os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
    os.environ['LOCAL_RANK'] = os.environ.get('OMPI_COMM_WORLD_LOCAL_RANK', '0')
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        raise KeyError('The environment variable MASTER_ADDR is not set')


def _is_ddp_wrapper(wrapper_type: Any) -> bool:
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel
    cls = MODEL_WRAPPERS.get(wrapper_type) if isinstance(wrapper_type, str) else wrapper_type
    return isinstance(cls, type) and issubclass(cls, DistributedDataParallel)


def setup_cpu_distributed(cfg: Any) -> bool:
    """Prepare a config (and the process group) for distributed training or testing on CPU.

    Does nothing when ``cfg.launcher`` is ``'none'`` or CUDA is available. Otherwise:

    * ``env_cfg.dist_cfg.backend`` becomes ``'gloo'`` (NCCL needs GPUs);
    * the process group is initialised here from the launcher's environment (``pytorch``: torchrun's
      ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``; ``slurm``; ``mpi``), because MMEngine's
      ``init_dist`` calls ``torch.cuda.set_device``; the Runner then finds it initialised;
    * ``model_wrapper_cfg`` (MMEngine's defaults: ``MMDistributedDataParallel`` with
      ``broadcast_buffers=False`` and the config's ``find_unused_parameters``) gets ``device_ids=None``,
      which DDP requires for a module on the CPU.

    Args:
        cfg (Config): The full config; changed in place. ``cfg.launcher`` must be set.

    Returns:
        bool: Whether the config was switched to CPU distributed mode.
    """
    launcher = cfg.get('launcher', 'none') or 'none'
    if launcher == 'none' or torch.cuda.is_available():
        return False
    env_cfg = cfg.setdefault('env_cfg', dict())
    dist_cfg = env_cfg.setdefault('dist_cfg', dict())
    dist_cfg['backend'] = 'gloo'

    wrapper_cfg = cfg.get('model_wrapper_cfg', None)
    if wrapper_cfg is None:
        wrapper_cfg = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                           find_unused_parameters=cfg.get('find_unused_parameters', False))
    if _is_ddp_wrapper(wrapper_cfg.get('type', 'MMDistributedDataParallel')):
        wrapper_cfg['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper_cfg

    if not torch_dist.is_initialized():
        kwargs = {k: v for k, v in dist_cfg.items() if k not in ('backend', 'port', 'init_backend')}
        if kwargs.get('timeout', None) is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
        if launcher == 'slurm':
            _set_slurm_env(dist_cfg.get('port', None))
        elif launcher == 'mpi':
            _set_mpi_env()
        elif launcher != 'pytorch':
            raise ValueError(f'Invalid launcher type: {launcher}')
        torch_dist.init_process_group(backend='gloo', **kwargs)
    return True


def teardown_distributed() -> None:
    """Destroy the default process group, if one was started, before the process exits.

    A process that exits with a live Gloo group can abort in the group's threads ("terminate called without an
    active exception", SIGABRT) after the work itself finished; ``tools/train.py`` and ``tools/test.py`` call
    this once the runner is done.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()  # no rank tears the group down while another still uses it
        torch_dist.destroy_process_group()
