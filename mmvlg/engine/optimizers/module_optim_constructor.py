"""Several optimizers in one run, each over its own sub-modules (SOHO: SGD for the CNN, AdamW for the rest), as an
MMEngine :class:`~mmengine.optim.OptimWrapperDict`, and the training step that drives them."""
import copy
from contextlib import ExitStack
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import MMDistributedDataParallel, is_model_wrapper
from mmengine.optim import AmpOptimWrapper, DefaultOptimWrapperConstructor, OptimWrapper, OptimWrapperDict
from torch import nn

from mmvlg.registry import MODEL_WRAPPERS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS


def _claims(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + '.') for p in prefixes)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ModuleOptimWrapperConstructor:
    """Build an :class:`~mmengine.optim.OptimWrapperDict` with one optimizer wrapper per group of sub-modules.

    ``optim_wrapper`` in a config::

        optim_wrapper = dict(
            constructor='ModuleOptimWrapperConstructor',
            backbone=dict(modules=['backbone'], type='OptimWrapper',
                          optimizer=dict(type='SGD', lr=1e-2, momentum=0.9, weight_decay=1e-4)),
            others=dict(modules=None, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4),
                        paramwise_cfg=dict(norm_decay_mult=0.0)))

    Each entry is an ordinary optimizer-wrapper config (``type``, ``optimizer``, ``clip_grad``,
    ``accumulative_counts``, its own ``paramwise_cfg`` with names relative to the whole model) plus ``modules``:
    the module-name prefixes whose parameters it optimizes (``'backbone'`` takes ``backbone.*``); one entry may
    give ``modules=None`` to take every trainable parameter the others leave. A parameter shared by two modules
    (a tied MLM decoder) counts once, under its first name. Parameter schedulers apply to every wrapper of the
    dict (MMEngine's ``ParamSchedulerHook``); a model trains with it through :func:`multi_optim_train_step`
    (its ``train_step`` calls it; under distributed training the model wrapper is
    :class:`MultiOptimDistributedDataParallel`, ``model_wrapper_cfg=dict(type='MultiOptimDistributedDataParallel')``).

    Raises:
        ValueError: A prefix that names no parameter, a parameter claimed by two entries, more than one
            ``modules=None`` entry, or trainable parameters left to no entry.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        if paramwise_cfg:
            raise ValueError('ModuleOptimWrapperConstructor: give paramwise_cfg inside each optimizer entry')
        cfgs = {k: dict(v) for k, v in optim_wrapper_cfg.items()}
        if not cfgs or not all(isinstance(v, dict) and 'optimizer' in v for v in cfgs.values()):
            raise ValueError('ModuleOptimWrapperConstructor: every entry of optim_wrapper must be an optimizer '
                             f'wrapper config with an optimizer, got {list(optim_wrapper_cfg)}')
        if sum(v.get('modules') is None for v in cfgs.values()) > 1:
            raise ValueError('ModuleOptimWrapperConstructor: at most one entry may take the rest (modules=None)')
        self.cfgs = cfgs

    def assign(self, model: nn.Module) -> Dict[str, List[str]]:
        """The trainable parameter names of each entry."""
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        out: Dict[str, List[str]] = {}
        owner: Dict[str, str] = {}
        for key, cfg in self.cfgs.items():
            prefixes = cfg.get('modules')
            if prefixes is None:
                continue
            prefixes = [prefixes] if isinstance(prefixes, str) else list(prefixes)
            for p in prefixes:
                if not any(_claims(n, [p]) for n, _ in model.named_parameters()):
                    raise ValueError(f'ModuleOptimWrapperConstructor: {key}.modules {p!r} names no parameter')
            out[key] = []
            for n, _ in named:
                if _claims(n, prefixes):
                    if n in owner:
                        raise ValueError(f'ModuleOptimWrapperConstructor: {n} is claimed by {owner[n]} and {key}')
                    owner[n] = key
                    out[key].append(n)
        rest = [n for n, _ in named if n not in owner]
        rest_key = next((k for k, v in self.cfgs.items() if v.get('modules') is None), None)
        if rest_key is not None:
            out[rest_key] = rest
        elif rest:
            raise ValueError(f'ModuleOptimWrapperConstructor: no optimizer for {rest[:5]} ... ({len(rest)} '
                             'parameters); add an entry with modules=None')
        return out

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        if is_model_wrapper(model):
            model = model.module
        params = dict(model.named_parameters())
        wrappers = {}
        for key, names in self.assign(model).items():
            cfg = copy.deepcopy(self.cfgs[key])
            cfg.pop('modules', None)
            paramwise = dict(cfg.pop('paramwise_cfg', None) or {})
            paramwise['bypass_duplicate'] = True  # tied parameters: once
            optimizer_cfg = cfg.pop('optimizer')
            mine = {id(params[n]) for n in names}
            # the default constructor's groups (lr/decay multipliers by name) over the whole model, kept to ours
            default = DefaultOptimWrapperConstructor(dict(optimizer=optimizer_cfg), paramwise)
            groups: List[dict] = []
            default.add_params(groups, model)
            groups = [dict(g, params=[p for p in g['params'] if id(p) in mine]) for g in groups]
            groups = [g for g in groups if g['params']]
            if not groups:
                raise ValueError(f'ModuleOptimWrapperConstructor: {key} has no trainable parameter')
            optimizer = OPTIMIZERS.build(dict(optimizer_cfg, params=groups))
            cfg.setdefault('type', 'OptimWrapper')
            wrappers[key] = OPTIM_WRAPPERS.build(cfg, default_args=dict(optimizer=optimizer))
        return OptimWrapperDict(**wrappers)


def multi_optim_train_step(model: nn.Module, data: Union[dict, tuple, list],
                           optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
    """:meth:`mmengine.model.BaseModel.train_step` for an :class:`~mmengine.optim.OptimWrapperDict`: one forward
    (inside every wrapper's ``optim_context``; ``model`` may be a model wrapper), one backward of the summed
    losses, then each wrapper clips and steps its own parameters when its accumulation count is reached.

    Raises:
        NotImplementedError: An :class:`~mmengine.optim.AmpOptimWrapper` in the dict (each would scale the loss
            with its own GradScaler).
    """
    module = model.module if is_model_wrapper(model) else model
    wrappers: List[OptimWrapper] = list(optim_wrapper.values())
    if any(isinstance(w, AmpOptimWrapper) for w in wrappers):
        raise NotImplementedError('multi_optim_train_step: AMP with several optimizers is not supported; use one '
                                  'OptimWrapper per entry')
    with ExitStack() as stack:
        for w in wrappers:
            stack.enter_context(w.optim_context(model))
        data = module.data_preprocessor(data, True)
        losses = model._run_forward(data, mode='loss')  # a DDP wrapper's forward: the gradients are all-reduced
    counts = {w._accumulative_counts for w in wrappers}
    if len(counts) > 1:
        raise ValueError(f'multi_optim_train_step: the wrappers accumulate over different counts {sorted(counts)}')
    parsed, log_vars = module.parse_losses(losses)
    first = wrappers[0]
    first.backward(first.scale_loss(parsed))  # the accumulation factor is the same for every wrapper
    for w in wrappers[1:]:
        w._inner_count += 1
    for w in wrappers:
        if w.should_update():
            w.step()
            w.zero_grad()
    return log_vars


@MODEL_WRAPPERS.register_module()
class MultiOptimDistributedDataParallel(MMDistributedDataParallel):
    """MMEngine's DDP wrapper that also trains with an :class:`~mmengine.optim.OptimWrapperDict` (through
    :func:`multi_optim_train_step`; MMEngine's own wrapper steps a single optimizer wrapper only)."""

    def train_step(self, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        if isinstance(optim_wrapper, OptimWrapperDict):
            return multi_optim_train_step(self, data, optim_wrapper)
        return super().train_step(data, optim_wrapper)


__all__ = ['ModuleOptimWrapperConstructor', 'multi_optim_train_step', 'MultiOptimDistributedDataParallel']
