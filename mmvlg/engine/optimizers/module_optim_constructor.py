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
    :class:`MultiOptimDistributedDataParallel`,
    ``model_wrapper_cfg=dict(type='mmvlg.engine.MultiOptimDistributedDataParallel')``, by import path: MMEngine's
    Runner looks the wrapper type up in its root registry, which does not reach mmvlg's; a model in MMEngine's
    plain DDP wrapper is refused here).

    Mixed precision: ``type='AmpOptimWrapper'`` at the top of ``optim_wrapper`` (what ``tools/train.py --amp``
    sets), with optional top-level ``dtype`` and ``loss_scale``, makes every entry an
    :class:`~mmengine.optim.AmpOptimWrapper` (an entry of type ``OptimWrapper`` or without a type is upgraded;
    the top-level ``dtype`` / ``loss_scale`` are defaults of the entries). All the entries then share the first
    entry's loss scaler (one scale for the one backward), and :func:`multi_optim_train_step` runs one autocast
    around the forward.

    Raises:
        ValueError: A prefix that names no parameter, a parameter claimed by two entries, more than one
            ``modules=None`` entry, trainable parameters left to no entry, a top-level ``type`` other than
            ``OptimWrapper`` / ``AmpOptimWrapper``, AMP and fp32 entries mixed, or a model wrapped by MMEngine's
            ``MMDistributedDataParallel`` rather than :class:`MultiOptimDistributedDataParallel` (the config lacks
            ``model_wrapper_cfg``).
    """

    AMP_KEYS = ('dtype', 'loss_scale', 'use_fsdp')

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        if paramwise_cfg:
            raise ValueError('ModuleOptimWrapperConstructor: give paramwise_cfg inside each optimizer entry')
        cfgs = {k: v for k, v in optim_wrapper_cfg.items()}
        top_type = cfgs.pop('type', None)
        top_amp = {k: cfgs.pop(k) for k in self.AMP_KEYS if k in cfgs}
        if top_type not in (None, 'OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError('ModuleOptimWrapperConstructor: optim_wrapper.type must be OptimWrapper or '
                             f'AmpOptimWrapper (it applies to every entry), got {top_type!r}')
        if top_amp and top_type != 'AmpOptimWrapper':
            raise ValueError(f'ModuleOptimWrapperConstructor: optim_wrapper.{sorted(top_amp)} need '
                             "optim_wrapper.type='AmpOptimWrapper'")
        if not cfgs or not all(isinstance(v, dict) and 'optimizer' in v for v in cfgs.values()):
            raise ValueError('ModuleOptimWrapperConstructor: every entry of optim_wrapper must be an optimizer '
                             f'wrapper config with an optimizer, got {list(optim_wrapper_cfg)}')
        cfgs = {k: dict(v) for k, v in cfgs.items()}
        if top_type == 'AmpOptimWrapper':
            for key, cfg in cfgs.items():
                if cfg.get('type', 'OptimWrapper') not in ('OptimWrapper', 'AmpOptimWrapper'):
                    raise ValueError(f'ModuleOptimWrapperConstructor: optim_wrapper.{key}.type={cfg["type"]!r} '
                                     "cannot become an AmpOptimWrapper (optim_wrapper.type='AmpOptimWrapper')")
                cfg['type'] = 'AmpOptimWrapper'
                for k, v in top_amp.items():
                    cfg.setdefault(k, v)
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
        if isinstance(model, MMDistributedDataParallel) and not isinstance(model, MultiOptimDistributedDataParallel):
            # MMEngine's DDP wrapper would fail at the first iteration (optim_context of an OptimWrapperDict)
            raise ValueError('ModuleOptimWrapperConstructor: distributed training with several optimizers needs '
                             "model_wrapper_cfg=dict(type='mmvlg.engine.MultiOptimDistributedDataParallel', ...) in "
                             f'the config, got the model wrapper {type(model).__name__}')
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
        amp = [isinstance(w, AmpOptimWrapper) for w in wrappers.values()]
        if any(amp):
            if not all(amp):
                raise ValueError('ModuleOptimWrapperConstructor: AMP and fp32 entries mixed '
                                 f'({dict(zip(wrappers, amp))}); give every entry type=AmpOptimWrapper or '
                                 "optim_wrapper.type='AmpOptimWrapper'")
            first = next(iter(wrappers.values()))
            for w in wrappers.values():  # one scale for the one backward of the summed losses
                w.loss_scaler = first.loss_scaler
        return OptimWrapperDict(**wrappers)


def multi_optim_train_step(model: nn.Module, data: Union[dict, tuple, list],
                           optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
    """:meth:`mmengine.model.BaseModel.train_step` for an :class:`~mmengine.optim.OptimWrapperDict`: one forward
    (inside every wrapper's ``optim_context``; ``model`` may be a model wrapper), one backward of the summed
    losses, then each wrapper clips and steps its own parameters when its accumulation count is reached.

    With :class:`~mmengine.optim.AmpOptimWrapper` entries (all of them, one autocast dtype): one autocast around
    the forward, the loss scaled once by the first wrapper's loss scaler, and, as PyTorch prescribes for several
    optimizers under one ``GradScaler``, each optimizer unscaled (when it clips) and stepped by that scaler
    (an optimizer whose gradients hold inf/nan skips its step), then one ``update`` of the scale.

    Raises:
        ValueError: AMP and fp32 wrappers mixed, AMP wrappers with different dtypes, or wrappers that
            accumulate over different counts.
    """
    module = model.module if is_model_wrapper(model) else model
    wrappers: List[OptimWrapper] = list(optim_wrapper.values())
    amp = [isinstance(w, AmpOptimWrapper) for w in wrappers]
    if any(amp) and not all(amp):
        raise ValueError('multi_optim_train_step: AMP and fp32 optimizer wrappers mixed '
                         f'({dict(zip(optim_wrapper.keys(), amp))})')
    use_amp = all(amp)
    if use_amp and len({w.cast_dtype for w in wrappers}) > 1:
        raise ValueError('multi_optim_train_step: the AMP wrappers autocast to different dtypes '
                         f'{[str(w.cast_dtype) for w in wrappers]}')
    counts = {w._accumulative_counts for w in wrappers}
    if len(counts) > 1:
        raise ValueError(f'multi_optim_train_step: the wrappers accumulate over different counts {sorted(counts)}')
    with ExitStack() as stack:
        for w in wrappers:  # the accumulation part of each context (no gradient sync between updates)
            stack.enter_context(OptimWrapper.optim_context(w, model) if use_amp else w.optim_context(model))
        if use_amp:
            from mmengine.runner.amp import autocast
            stack.enter_context(autocast(dtype=wrappers[0].cast_dtype))
        data = module.data_preprocessor(data, True)
        losses = model._run_forward(data, mode='loss')  # a DDP wrapper's forward: the gradients are all-reduced
    parsed, log_vars = module.parse_losses(losses)
    first = wrappers[0]
    first.backward(first.scale_loss(parsed))  # the accumulation factor is the same for every wrapper
    for w in wrappers[1:]:
        w._inner_count += 1
    ready = [w for w in wrappers if w.should_update()]
    if use_amp and ready:
        scaler = first.loss_scaler
        for w in ready:
            if w.clip_grad_kwargs:
                scaler.unscale_(w.optimizer)
                w._clip_grad()
            scaler.step(w.optimizer)
        scaler.update(first._scale_update_param)
        for w in ready:
            w.zero_grad()
    else:
        for w in ready:
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
