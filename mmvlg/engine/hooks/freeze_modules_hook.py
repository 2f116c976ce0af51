"""A cold start: named sub-modules frozen for the first epochs or iterations of training (SOHO freezes its visual
backbone for the first 10 epochs, arXiv:2104.03135, section 4.1)."""
from typing import List, Optional, Sequence

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmvlg.registry import HOOKS


@HOOKS.register_module()
class FreezeModulesHook(Hook):
    """Freeze ``modules`` (no gradients, so no optimizer step and no weight decay; their norm layers in eval mode
    with ``norm_eval``) while the epoch (``by_epoch``) or the iteration is below ``end``, then give them back their
    own ``requires_grad`` (parameters frozen by the module itself, e.g. mmdet ResNet's ``frozen_stages``, stay
    frozen) and their train mode. It decides from the runner's counters at every epoch and iteration, so a resumed
    run is frozen exactly when the uninterrupted one was.

    Under distributed training the model wrapper must be built with ``find_unused_parameters=True``: DDP
    registers the frozen parameters as trainable and would otherwise wait for their gradients. With one optimizer
    that is ``model_wrapper_cfg=dict(type='MMDistributedDataParallel', find_unused_parameters=True)``; with several
    (an :class:`~mmengine.optim.OptimWrapperDict`, e.g. SOHO's SGD + AdamW) it is
    ``model_wrapper_cfg=dict(type='mmvlg.engine.MultiOptimDistributedDataParallel', find_unused_parameters=True)``
    (MMEngine's own wrapper steps a single optimizer wrapper); the error names the one the run needs.

    Args:
        modules (Sequence[str]): Names of sub-modules of the model (``'backbone'``).
        end (int): The first epoch (``by_epoch``) or iteration (0-based) that trains them.
        by_epoch (bool): Count ``end`` in epochs (True) or iterations. Defaults to True.
        norm_eval (bool): Keep the frozen modules' BatchNorm layers in eval mode (running statistics fixed).
            Defaults to True.
    """

    priority = 'NORMAL'

    def __init__(self, modules: Sequence[str], end: int, by_epoch: bool = True, norm_eval: bool = True) -> None:
        if isinstance(modules, str):
            modules = [modules]
        if not modules or end < 0:
            raise ValueError(f'FreezeModulesHook: need module names and end >= 0, got {modules}, {end}')
        self.modules = list(modules)
        self.end = int(end)
        self.by_epoch = bool(by_epoch)
        self.norm_eval = bool(norm_eval)
        self._frozen: Optional[List[nn.Parameter]] = None
        self._targets: List[nn.Module] = []

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._targets = []
        for name in self.modules:
            try:
                self._targets.append(model.get_submodule(name))
            except AttributeError as e:
                raise ValueError(f'FreezeModulesHook: the model has no sub-module {name!r}') from e
        if (is_model_wrapper(runner.model) and hasattr(runner.model, 'find_unused_parameters')
                and not runner.model.find_unused_parameters and self.end > 0):
            raise ValueError('FreezeModulesHook: distributed training with frozen modules needs '
                             f"model_wrapper_cfg=dict(type='{self._wrapper_type(runner)}', "
                             'find_unused_parameters=True)')
        self._apply(runner)

    @staticmethod
    def _wrapper_type(runner) -> str:
        """The DDP wrapper type the run needs: mmvlg's for several optimizers (an ``OptimWrapperDict``, or the model
        already wrapped in it), MMEngine's otherwise."""
        from mmvlg.engine.optimizers import MultiOptimDistributedDataParallel  # here: mmvlg.engine imports hooks first
        if (isinstance(getattr(runner, 'optim_wrapper', None), OptimWrapperDict)
                or isinstance(runner.model, MultiOptimDistributedDataParallel)):
            return 'mmvlg.engine.MultiOptimDistributedDataParallel'
        return 'MMDistributedDataParallel'

    def before_train_epoch(self, runner) -> None:
        self._apply(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._apply(runner)

    @property
    def frozen(self) -> bool:
        """Whether the modules are frozen now."""
        return self._frozen is not None

    def _apply(self, runner) -> None:
        now = runner.epoch if self.by_epoch else runner.iter
        if now < self.end:
            if self._frozen is None:
                self._frozen = [p for m in self._targets for p in m.parameters() if p.requires_grad]
                for p in self._frozen:
                    p.requires_grad_(False)
                unit = 'epoch' if self.by_epoch else 'iteration'
                print_log(f'FreezeModulesHook: {self.modules} frozen ({len(self._frozen)} parameters) until {unit} '
                          f'{self.end}', logger='current')
            if self.norm_eval:  # every time: the loops call model.train()
                for m in self._targets:
                    for layer in m.modules():
                        if isinstance(layer, _BatchNorm):
                            layer.eval()
        elif self._frozen is not None:
            for p in self._frozen:
                p.requires_grad_(True)
            self._frozen = None
            training = runner.model.training
            for m in self._targets:
                m.train(training)  # the module's own train() keeps its own frozen parts (mmdet ResNet)
            print_log(f'FreezeModulesHook: {self.modules} trainable from now on', logger='current')


__all__ = ['FreezeModulesHook']
