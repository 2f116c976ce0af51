"""Catch config typos before a run starts.

MMEngine's ``Runner.from_cfg`` reads the keys it knows and ignores the rest, so ``--cfg-options
train_cfgg.max_epochs=1`` trains with the config's ``train_cfg`` and no message; and ``CheckpointHook`` takes
``**kwargs`` that it hands to ``Runner.save_checkpoint``, so a misspelled argument
(``default_hooks.checkpoint.intervall=1``) fails only when the first checkpoint is saved, after an epoch of
training. ``tools/train.py`` and ``tools/test.py`` therefore call:

* :func:`check_cfg_options` before merging ``--cfg-options``: the first part of each key must be a key of the
  config or an argument of the runner (a new helper variable would not be substituted into the config
  anyway);
* :func:`check_config` on the merged config: no top-level key may be a near miss of a runner argument
  (``train_cfgg``, ``custom_hook``, ...), and every hook of ``default_hooks`` and ``custom_hooks`` must be a
  registered hook whose arguments its class takes (the extra keyword arguments of ``CheckpointHook`` must be
  ones ``Runner.save_checkpoint`` takes, those of ``EMAHook`` ones its averaged model takes).

Configs define helper variables freely (``data_root``, ``train_pipeline``, ``lang_model_name``, ...), so top-level
keys are not checked against a whitelist. Errors are :class:`ConfigCheckError`, which names the config key.
"""
import difflib
import inspect
from typing import Any, Dict, Iterable, List, Optional, Set

__all__ = ['ConfigCheckError', 'runner_keys', 'check_cfg_options', 'check_top_level_keys', 'check_hook_configs',
           'check_config', 'has_hook']

# Top-level keys that MMEngine's Runner (or FlexibleRunner, or the tools) reads besides its ``__init__`` args.
EXTRA_RUNNER_KEYS = {'runner_type', 'model_wrapper_cfg', 'compile', 'activation_checkpointing',
                     'efficient_conv_bn_eval', 'strategy', 'launcher', 'work_dir', 'gpu_ids'}
# Keys of a hook config that are not arguments of its class (Runner.register_hook pops ``priority``, the
# registry pops ``type`` and ``_scope_``).
HOOK_META_KEYS = {'type', 'priority', '_scope_'}


class ConfigCheckError(ValueError):
    """A config key is misspelled or unknown."""


def _suggest(name: str, candidates: Iterable[str], cutoff: float = 0.6) -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=cutoff)
    return f' (did you mean {" or ".join(repr(c) for c in close)}?)' if close else ''


def _runner_class(cfg: Any) -> type:
    from mmengine.runner import Runner
    runner_type = cfg.get('runner_type', None) if hasattr(cfg, 'get') else None
    if isinstance(runner_type, type):
        return runner_type
    if isinstance(runner_type, str):
        from mmengine.registry import RUNNERS
        with RUNNERS.switch_scope_and_registry(cfg.get('default_scope', None)) as registry:
            found = registry.get(runner_type)
        if found is not None:
            return found
    return Runner


def runner_keys(cfg: Any = None) -> Set[str]:
    """The top-level config keys a runner reads: the arguments of ``Runner.__init__`` (of ``cfg.runner_type``
    when given), plus ``runner_type``, ``model_wrapper_cfg``, ``compile``, ...

    Args:
        cfg (Config, optional): The config, for its ``runner_type``.

    Returns:
        set[str]: The keys.
    """
    from mmengine.runner import Runner
    keys = set(EXTRA_RUNNER_KEYS)
    classes = {Runner, _runner_class(cfg)} if cfg is not None else {Runner}
    for cls in classes:
        keys |= {n for n, p in inspect.signature(cls.__init__).parameters.items()
                 if n not in ('self', 'cfg') and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return keys


def _source(cfg: Any) -> str:
    filename = getattr(cfg, 'filename', None)
    return f'config {filename}' if filename else 'the config'


def check_cfg_options(cfg: Any, options: Optional[Dict[str, Any]]) -> None:
    """Check ``--cfg-options`` against a config before they are merged into it.

    The first part of each key (``train_cfg`` of ``train_cfg.max_epochs``) must be a top-level key of the
    config or an argument of the runner: an unknown one would be ignored by the runner without a message.

    Args:
        cfg (Config): The config, before merging.
        options (dict, optional): ``--cfg-options`` as parsed by MMEngine's ``DictAction``.

    Raises:
        ConfigCheckError: Listing the unknown keys, with close matches.
    """
    if not options:
        return
    known = set(cfg.keys()) | runner_keys(cfg)
    errors = []
    for key in options:
        top = str(key).split('.')[0]
        if top not in known:
            errors.append(f'--cfg-options {key}: {top!r} is neither a key of {_source(cfg)} nor an argument of the '
                          f'runner, so it would be silently ignored{_suggest(top, known)}')
    if errors:
        raise ConfigCheckError('\n'.join(errors) + '\nFix the key, or add it to the config file if it is new.')


def check_top_level_keys(cfg: Any, cutoff: float = 0.85) -> None:
    """Refuse top-level keys that are near misses of runner arguments (``train_cfgg``, ``custom_hook``).

    Keys that are not runner arguments are otherwise allowed: configs define helper variables freely.

    Args:
        cfg (Config): The config.
        cutoff (float): Similarity (:class:`difflib.SequenceMatcher` ratio) from which a key counts as a near
            miss. Defaults to 0.85.

    Raises:
        ConfigCheckError: Listing the near misses.
    """
    known = runner_keys(cfg)
    errors = []
    for key in cfg.keys():
        if key in known or key.startswith('_'):
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=cutoff)
        if close:
            errors.append(f'{_source(cfg)}: top-level key {key!r} is not read by the runner; did you mean '
                          f'{close[0]!r}?')
    if errors:
        raise ConfigCheckError('\n'.join(errors) + '\nRename the key (a helper variable needs a name that is not '
                               'this close to a runner argument).')


def _hook_entries(cfg: Any) -> List[tuple]:
    """``(config key, hook config)`` of every hook config (dict) in ``default_hooks`` and ``custom_hooks``."""
    entries = []
    default_hooks = cfg.get('default_hooks', None) or {}
    if not isinstance(default_hooks, dict):
        raise ConfigCheckError(f'{_source(cfg)}: default_hooks must be a dict of hook configs, got '
                               f'{type(default_hooks).__name__}')
    for name, hook in default_hooks.items():
        if hook is not None:
            entries.append((f'default_hooks.{name}', hook))
    custom_hooks = cfg.get('custom_hooks', None) or []
    if not isinstance(custom_hooks, (list, tuple)):
        raise ConfigCheckError(f'{_source(cfg)}: custom_hooks must be a list of hook configs, got '
                               f'{type(custom_hooks).__name__}')
    for i, hook in enumerate(custom_hooks):
        entries.append((f'custom_hooks[{i}]', hook))
    return entries


def _checkpoint_hook_extras(runner_cls: type) -> Optional[Set[str]]:
    """The keyword arguments that ``CheckpointHook`` may forward to ``runner_cls.save_checkpoint`` (None:
    any, the method takes ``**kwargs``)."""
    params = inspect.signature(runner_cls.save_checkpoint).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None
    # CheckpointHook passes out_dir, filename and file_client_args positionally and these by name.
    passed = {'save_optimizer', 'save_param_scheduler', 'meta', 'by_epoch', 'backend_args'}
    names = [n for n in params if n != 'self']
    return set(names[3:]) - passed


def _ema_hook_extras(cfg: Any, ema_type: Any) -> tuple:
    """The keyword arguments that ``EMAHook`` may forward to its averaged model ``ema_type`` (None: any), and
    the model's name."""
    from mmengine.registry import MODELS
    if isinstance(ema_type, type):
        ema_cls = ema_type
    else:
        with MODELS.switch_scope_and_registry(cfg.get('default_scope', None)) as registry:
            ema_cls = registry.get(ema_type)
    if ema_cls is None:
        return None, repr(ema_type)
    params = inspect.signature(ema_cls).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None, ema_cls.__name__
    return {n for n in params if n != 'model'}, ema_cls.__name__


def check_hook_configs(cfg: Any) -> None:
    """Check that every hook of ``default_hooks``/``custom_hooks`` is registered and takes its arguments.

    The check binds the arguments to the hook class's signature without building the hook (building some
    hooks needs the runner's visualizer). ``CheckpointHook`` (and subclasses) forward unknown keyword
    arguments to ``Runner.save_checkpoint``: those must be arguments of the runner's ``save_checkpoint``
    that the hook does not already pass, otherwise they would fail at the first save; ``EMAHook`` forwards
    them to its averaged model (``ema_type``), whose arguments they must be.

    Args:
        cfg (Config): The config.

    Raises:
        ConfigCheckError: Naming the config key (``default_hooks.checkpoint.intervall``) of each problem.
    """
    from mmengine.hooks import CheckpointHook, EMAHook
    from mmengine.registry import HOOKS
    errors = []
    runner_cls = _runner_class(cfg)
    with HOOKS.switch_scope_and_registry(cfg.get('default_scope', None)) as registry:
        for key, hook in _hook_entries(cfg):
            if not isinstance(hook, dict):
                if not hasattr(hook, 'priority'):  # a built Hook is fine
                    errors.append(f'{key}: expected a hook config (dict) or a Hook, got {type(hook).__name__}')
                continue
            kind = hook.get('type', None)
            if kind is None:
                errors.append(f'{key}: the hook config has no "type"')
                continue
            cls = kind if isinstance(kind, type) else registry.get(kind)
            if cls is None:
                names = list(registry.module_dict) + list(HOOKS.module_dict)
                errors.append(f'{key}.type: {kind!r} is not a registered hook{_suggest(str(kind), names)}')
                continue
            kwargs = {k: v for k, v in hook.items() if k not in HOOK_META_KEYS}
            params = inspect.signature(cls).parameters
            named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
            takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
            unknown = [k for k in kwargs if k not in named]
            where = ''
            if takes_any:
                if isinstance(cls, type) and issubclass(cls, CheckpointHook):
                    allowed = _checkpoint_hook_extras(runner_cls)
                    where = (f' (CheckpointHook hands unknown arguments to {runner_cls.__name__}.save_checkpoint, '
                             'which does not take it: it would fail at the first checkpoint save)')
                elif isinstance(cls, type) and issubclass(cls, EMAHook):
                    allowed, ema_name = _ema_hook_extras(cfg, hook.get('ema_type', 'ExponentialMovingAverage'))
                    named = named | (allowed or set())
                    where = f' (nor has the averaged model {ema_name}, which EMAHook hands unknown arguments to)'
                else:
                    allowed = None
                unknown = [] if allowed is None else [k for k in unknown if k not in allowed]
            for k in unknown:
                errors.append(f'{key}.{k}: {cls.__name__} has no argument {k!r}'
                              f'{_suggest(k, named | HOOK_META_KEYS)}{where}')
            missing = [n for n, p in params.items() if p.default is p.empty
                       and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in kwargs]
            for n in missing:
                errors.append(f'{key}: {cls.__name__} needs the argument {n!r}')
    if errors:
        raise ConfigCheckError(f'hook configs of {_source(cfg)} are wrong:\n  ' + '\n  '.join(errors)
                               + '\nFix them in the config or in --cfg-options.')


def check_config(cfg: Any) -> None:
    """:func:`check_top_level_keys` and :func:`check_hook_configs` (the checks of the merged config).

    Args:
        cfg (Config): The config, with ``--cfg-options`` merged in.

    Raises:
        ConfigCheckError: What is wrong, by config key.
    """
    check_top_level_keys(cfg)
    check_hook_configs(cfg)


def has_hook(hooks: Optional[Iterable[Any]], name: str) -> bool:
    """Whether a list of hook configs (or hooks) has one of type ``name`` (a scope prefix is ignored)."""
    for hook in hooks or []:
        kind = hook.get('type', '') if isinstance(hook, dict) else type(hook)
        kind = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
        if kind.split('.')[-1] == name:
            return True
    return False
