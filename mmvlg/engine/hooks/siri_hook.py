"""Selective Retraining (SiRi, arXiv:2207.13325, section 3.2) as an MMEngine hook."""
import copy
import json
import math
import os.path as osp
import shutil
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.dist import broadcast, get_world_size, is_main_process
from mmengine.hooks import EMAHook, Hook
from mmengine.model import BaseModule, is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.runner import BaseLoop, EpochBasedTrainLoop, IterBasedTrainLoop
from torch import nn

from mmvlg.registry import HOOKS
from mmvlg.utils.atomic_io import atomic_torch_save, atomic_write_text

# SiRi's default split of MDETR*: the vision-language encoder is kept, everything else re-initialized.
DEFAULT_KEEP = ('encoder', )
INITIAL_STATE_FILE = 'siri_initial_state.pth'
SUMMARY_FILE = 'siri_summary.json'
# Keys of a scheduler config that are lengths or positions in time, stretched to the round's length.
_TIME_KEYS = ('begin', 'end', 'T_max', 'total_steps', 'step_size')


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def _matches(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + '.') for p in prefixes)


def _run_files(runner, filename: str) -> List[str]:
    """Where a file written by this run may be: the work dir, then the folder of the checkpoint loaded
    (a run resumed in another work dir)."""
    paths = [osp.join(runner.work_dir, filename)]
    load_from = getattr(runner, '_load_from', None)
    if load_from:
        paths.append(osp.join(osp.dirname(osp.abspath(load_from)), filename))
    return paths


def _named_tensors(model: nn.Module) -> Iterator[Tuple[str, torch.Tensor]]:
    yield from model.named_parameters()
    yield from model.named_buffers()


@HOOKS.register_module()
class SiRiHook(Hook):
    """Selective Retraining: keep training some modules (by default the vision-language encoder) and
    periodically re-initialize all the others, inside one training run (`SiRi <https://arxiv.org/abs/2207.13325>`_).

    Training is an initial stage followed by ``num_rounds`` retraining rounds. At the start of each round:

    * every parameter and buffer not kept is restored to its initialization: ``reinit='initial'`` gives
      the exact initial values of this run (pretrained parts get their pretrained weights back, random
      parts their first random draw: what the authors' scripts give with a fixed seed);
      ``reinit='fresh'`` draws new random values (``reset_parameters`` and ``init_weights`` of the
      re-initialized modules; ``init_weights`` reloads pretrained weights, e.g. ``init_cfg=Pretrained``
      or ``HFTextEncoder``'s ``name_or_path``). Kept tensors are never touched, whatever the nesting;
    * the optimizer state of the re-initialized parameters is cleared (``reset_optimizer='reinitialized'``)
      or the whole state (``'all'``, as the authors' scripts that start a new process per round);
    * the parameter schedules (warm-up included) restart: the config's ``param_scheduler``, written for the
      initial stage, is rebuilt with its times (``begin``, ``end``, ``T_max``, ``milestones``, ...) scaled by
      ``round_length / initial``, or ``round_param_scheduler`` is used if given; per-module learning rates
      (``paramwise_cfg``) are unchanged;
    * an EMA model (``EMAHook``), if any, restarts from the current weights.

    Under distributed training the re-initialized tensors are broadcast from rank 0, so all ranks hold
    identical weights. Mixed precision (``AmpOptimWrapper``) needs nothing more: the weights stay in float32,
    and the dynamic loss scale is kept across rounds (it only follows the size of the gradients).

    The round and the epoch/iteration of the last re-initialization are stored in every checkpoint
    (``meta['siri']``): resuming inside a round continues it, resuming at a round boundary re-initializes
    once. With ``reinit='initial'`` the initial values of the whole model are kept in
    ``{work_dir}/siri_initial_state.pth``, written at the start of the run and read back on resume (from
    the work dir or the folder of the checkpoint resumed from), so that a run with another ``keep`` can also
    resume from this run's checkpoints.

    After every validation the metric is logged with its round; the best checkpoint of each round is kept as
    ``siri_round{r}_best.pth`` and the last as ``siri_round{r}_last.pth`` (round 0 is the initial stage), and
    ``siri_summary.json`` in the work dir lists the metric of every validation and the best/last per round
    (the paper's Fig. 6).

    The hook needs the schedule of the initial stage as a config: build the runner from a config
    (``Runner.from_cfg``, as ``tools/train.py`` does) or give ``round_param_scheduler``.

    Args:
        initial (int): Length of the initial stage, in epochs (epoch-based loops) or iterations
            (iteration-based loops).
        round_length (int): Length of each retraining round, same unit.
        num_rounds (int): Number of retraining rounds. The loop's ``max_epochs``/``max_iters`` must equal
            ``initial + num_rounds * round_length``.
        keep (Sequence[str]): Name prefixes (over the unwrapped model's parameters and buffers) of the
            modules that are kept, e.g. ``('encoder',)`` or ``('encoder', 'decoder', 'query_embedding',
            'bbox_head')``. Defaults to ``('encoder',)``.
        reinit (str): ``'initial'`` or ``'fresh'``. Defaults to ``'initial'``.
        reset_optimizer (str): ``'reinitialized'`` or ``'all'``. Defaults to ``'reinitialized'``.
        round_param_scheduler (list[dict], optional): Schedulers of one round, counted from the round's
            start. Defaults to the config's ``param_scheduler`` stretched by ``round_length / initial``.
        metric (str): Validation metric tracked per round. Defaults to ``'refexp/Prec@1'``.
        rule (str): ``'greater'`` or ``'less'``: which values of ``metric`` are better. Defaults to
            ``'greater'``.
        save_round_checkpoints (bool): Save the best/last checkpoint of each round. Defaults to True.
    """

    priority = 'LOW'  # after EMAHook (which swaps the EMA weights in and out around validation)

    def __init__(self,
                 initial: int,
                 round_length: int,
                 num_rounds: int,
                 keep: Union[str, Sequence[str]] = DEFAULT_KEEP,
                 reinit: str = 'initial',
                 reset_optimizer: str = 'reinitialized',
                 round_param_scheduler: Optional[Union[dict, List[dict]]] = None,
                 metric: str = 'refexp/Prec@1',
                 rule: str = 'greater',
                 save_round_checkpoints: bool = True) -> None:
        if reinit not in ('initial', 'fresh'):
            raise ValueError(f'SiRiHook: reinit must be "initial" or "fresh", got {reinit!r}')
        if reset_optimizer not in ('reinitialized', 'all'):
            raise ValueError(f'SiRiHook: reset_optimizer must be "reinitialized" or "all", got {reset_optimizer!r}')
        if rule not in ('greater', 'less'):
            raise ValueError(f'SiRiHook: rule must be "greater" or "less", got {rule!r}')
        for key, value, low in (('initial', initial, 1), ('round_length', round_length, 1),
                                ('num_rounds', num_rounds, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f'SiRiHook: {key} must be an integer >= {low}, got {value!r}')
        self.initial, self.round_length, self.num_rounds = initial, round_length, num_rounds
        self.keep = (keep, ) if isinstance(keep, str) else tuple(keep)
        self.reinit = reinit
        self.reset_optimizer = reset_optimizer
        self.round_param_scheduler = round_param_scheduler
        self.metric, self.rule = metric, rule
        self.save_round_checkpoints = save_round_checkpoints
        self.round = 0
        self.last_reinit = 0
        self.history: List[dict] = []
        # (round, epoch or iteration) of every re-initialization done by this process.
        self.reinitializations: List[Tuple[int, int]] = []
        self.by_epoch = True
        self._training = False
        self._initial_state: Optional[Dict[str, torch.Tensor]] = None
        self._check_missing_validation = False

    # ---------------------------------------------------------------------------------------- schedule
    def round_start(self, r: int) -> int:
        """First epoch/iteration (0-based) of round ``r``; round 0 is the initial stage."""
        return 0 if r == 0 else self.initial + (r - 1) * self.round_length

    def round_end(self, r: int) -> int:
        """Number of epochs/iterations done when round ``r`` ends."""
        return self.initial if r == 0 else self.round_start(r) + self.round_length

    def round_of(self, step: int) -> int:
        """Round of the 0-based epoch/iteration ``step``."""
        if step < self.initial:
            return 0
        return min(self.num_rounds, 1 + (step - self.initial) // self.round_length)

    def reinit_names(self, model: nn.Module) -> List[str]:
        """Names of the parameters and buffers of ``model`` that are re-initialized."""
        return [n for n, _ in _named_tensors(model) if not _matches(n, self.keep)]

    def _unit(self) -> str:
        return 'epoch' if self.by_epoch else 'iter'

    # ------------------------------------------------------------------------------------------- set-up
    def before_run(self, runner) -> None:
        """Check the loop length, the ``keep`` prefixes and the schedule (training runs only).

        Raises:
            ValueError: ``train_cfg.max_epochs``/``max_iters`` is not ``initial + num_rounds * round_length``,
                a ``keep`` prefix matches nothing, or there is no scheduler config to restart.
        """
        loop = getattr(runner, '_train_loop', None)
        if not isinstance(loop, BaseLoop):  # runner.val() / runner.test(): nothing to do
            return
        if isinstance(loop, EpochBasedTrainLoop):
            self.by_epoch, total, key = True, loop.max_epochs, 'train_cfg.max_epochs'
        elif isinstance(loop, IterBasedTrainLoop):
            self.by_epoch, total, key = False, loop.max_iters, 'train_cfg.max_iters'
        else:
            raise TypeError(f'SiRiHook supports EpochBasedTrainLoop and IterBasedTrainLoop, got {type(loop)}')
        expected = self.initial + self.num_rounds * self.round_length
        if total != expected:
            raise ValueError(f'SiRiHook: {key}={total}, but initial + num_rounds * round_length = {self.initial} + '
                             f'{self.num_rounds} * {self.round_length} = {expected}; make them agree')
        model = _unwrap(runner.model)
        names = [n for n, _ in _named_tensors(model)]
        for prefix in self.keep:
            if not any(_matches(n, [prefix]) for n in names):
                raise ValueError(f'SiRiHook: keep prefix {prefix!r} matches no parameter or buffer of '
                                 f'{type(model).__name__}')
        if self.num_rounds > 0 and self.round_param_scheduler is None and runner.param_schedulers is not None \
                and runner.cfg.get('param_scheduler', None) is None:
            raise ValueError('SiRiHook: the runner has parameter schedulers but no param_scheduler config to '
                             'restart them from; build the runner with Runner.from_cfg or give '
                             'round_param_scheduler')
        self._training = True

    def before_train(self, runner) -> None:
        """Take the snapshot of the initial values (after ``init_weights`` and ``load_from``); when resuming,
        read back the snapshot that the start of the run wrote."""
        if self.reinit == 'initial':
            self._load_or_save_initial_state(runner)
        # The check waits for the first epoch/iteration: the other hooks (CheckpointHook's best tracking) are
        # set up in their own before_train.
        self._check_missing_validation = runner.iter > 0

    def _load_or_save_initial_state(self, runner) -> None:
        path = osp.join(runner.work_dir, INITIAL_STATE_FILE)
        model = _unwrap(runner.model)
        if runner.iter > 0:  # resumed
            candidates = _run_files(runner, INITIAL_STATE_FILE)
            found = [p for p in candidates if osp.isfile(p)]
            if not found:
                raise FileNotFoundError(f'SiRiHook: resuming with reinit="initial" needs the initial-state snapshot '
                                        f'{INITIAL_STATE_FILE} written by the start of this run; looked in '
                                        f'{candidates}')
            snapshot = torch.load(found[0], map_location='cpu', weights_only=True)
            if found[0] != path and is_main_process():
                shutil.copyfile(found[0], path)
            missing = set(self.reinit_names(model)) - set(snapshot)
            if missing:
                raise KeyError(f'SiRiHook: {found[0]} lacks {sorted(missing)[:5]} (from another model?)')
        else:
            # The whole model is saved, so that a run with another ``keep`` can resume from this run's
            # checkpoints (e.g. the Table 2 variants from the same initial stage); only what is re-initialized
            # stays in memory.
            snapshot = {n: t.detach().cpu().clone() for n, t in _named_tensors(model)}
            if is_main_process():
                atomic_torch_save(snapshot, path)
        self._initial_state = {n: t for n, t in snapshot.items() if not _matches(n, self.keep)}

    def _rerun_missing_validation(self, runner) -> None:
        """On resume, run the validation that was due right after the resumed checkpoint if neither the
        checkpoint nor a summary recorded it (the run was killed during it, or before it wrote the summary),
        so that the round's values and best are complete."""
        loop, val_loop = runner.train_loop, getattr(runner, '_val_loop', None)
        if not isinstance(val_loop, BaseLoop):
            return
        done, total = (runner.epoch, loop.max_epochs) if self.by_epoch else (runner.iter, loop.max_iters)
        interval, begin = getattr(loop, 'val_interval', 1), getattr(loop, 'val_begin', 1)
        due = done >= begin and (done % interval == 0 or done == total)
        if not due or any(e['iter'] == runner.iter for e in self.history):
            return
        runner.logger.warning(f'SiRi: the validation after {self._unit()} {done} is in neither the checkpoint nor '
                              f'{SUMMARY_FILE}: running it again')
        from .random_state_hook import capture_random_state, restore_random_state
        state = capture_random_state()  # the validation must not shift the training's random stream
        runner.val_loop.run()
        restore_random_state(state)

    # ---------------------------------------------------------------------------------------- the rounds
    def before_train_epoch(self, runner) -> None:
        """Start a round if epoch ``runner.epoch`` is the first of one (epoch-based loops)."""
        if self._check_missing_validation:
            self._check_missing_validation = False
            self._rerun_missing_validation(runner)
        if self.by_epoch:
            self._maybe_start_round(runner, runner.epoch)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Start a round if iteration ``runner.iter`` is the first of one (iteration-based loops)."""
        if self._check_missing_validation:
            self._check_missing_validation = False
            self._rerun_missing_validation(runner)
        if not self.by_epoch:
            self._maybe_start_round(runner, runner.iter)

    def _maybe_start_round(self, runner, step: int) -> None:
        r = self.round_of(step)
        if r > self.round and step == self.round_start(r):
            self.start_round(runner, r)

    def start_round(self, runner, r: int) -> None:
        """Re-initialize, reset the optimizer state, restart the schedules and the EMA for round ``r``.

        Args:
            runner (Runner): The runner.
            r (int): The round that starts (>= 1).
        """
        model = _unwrap(runner.model)
        names = set(self.reinit_names(model))
        if self.reinit == 'initial':
            with torch.no_grad():
                for n, t in _named_tensors(model):
                    if n in names:
                        t.copy_(self._initial_state[n].to(t.device, t.dtype))
        else:
            unchanged = _fresh_init(model, self.keep)
            if unchanged:
                runner.logger.warning(f'SiRi: the fresh re-initialization left {len(unchanged)} trainable tensors '
                                      f'unchanged (no reset_parameters/init_weights covers them): {unchanged[:10]}')
        if get_world_size() > 1:
            for n, t in _named_tensors(model):
                if n in names:
                    broadcast(t.data, src=0)
        self._reset_optimizer(runner, model, names)
        self._restart_schedule(runner)
        self._reset_ema(runner)
        self.round, self.last_reinit = r, self.round_start(r)
        self.reinitializations.append((r, self.last_reinit))
        runner.message_hub.update_info('siri_round', r)
        runner.logger.info(f'SiRi: round {r} starts at {self._unit()} {self.last_reinit}: re-initialized '
                           f'{len(names)} tensors ({self.reinit}), kept {", ".join(self.keep)}, optimizer state '
                           f'reset ({self.reset_optimizer}), schedules restarted')

    def _reset_optimizer(self, runner, model: nn.Module, names: set) -> None:
        wrappers = runner.optim_wrapper.values() if isinstance(runner.optim_wrapper, OptimWrapperDict) \
            else [runner.optim_wrapper]
        params = {id(p) for n, p in model.named_parameters() if n in names}
        for wrapper in wrappers:
            opt = wrapper.optimizer
            if self.reset_optimizer == 'all':
                opt.state.clear()
            else:
                for p in list(opt.state.keys()):
                    if id(p) in params:
                        del opt.state[p]
            # The rebuilt (chainable) schedulers start from the current values: go back to the base values (in
            # the wrapper's groups, which include the base settings that MMEngine logs as base_lr).
            for group in wrapper.param_groups:
                for key in [k for k in group if k.startswith('initial_')]:
                    if key[len('initial_'):] in group:
                        group[key[len('initial_'):]] = group[key]

    def _stretch(self, cfgs: List[dict], runner, scale: float) -> List[dict]:
        cfgs = copy.deepcopy(cfgs if isinstance(cfgs, (list, tuple)) else [cfgs])
        for cfg in cfgs:
            for key in _TIME_KEYS:
                value = cfg.get(key, None)
                if isinstance(value, (int, float)) and not math.isinf(value):
                    value = value * scale
                    cfg[key] = value if cfg.get('convert_to_iter_based', False) else int(round(value))
            if 'milestones' in cfg:
                cfg['milestones'] = [m * scale if cfg.get('convert_to_iter_based', False) else int(round(m * scale))
                                     for m in cfg['milestones']]
            if cfg.get('end', None) is None:  # the runner's default end is the whole run: make it the round's
                cfg['end'] = self._round_length_in(runner, cfg)
            # At least 2 steps (within the round): MMEngine's schedulers set their values at steps begin .. end - 1
            # only, so a warm-up shrunk to 1 step would never reach its end value and leave the learning rate at
            # its start value for the whole round.
            begin, end = cfg.get('begin', 0), cfg['end']
            if math.isinf(end):
                continue
            if cfg.get('convert_to_iter_based', False):
                length = len(runner.train_dataloader)
                if int(end * length) - int(begin * length) < 2:
                    cfg['end'] = min(begin + 2 / length + 1e-9, max(self.round_length, begin + 1 / length))
            elif end - begin < 2:
                cfg['end'] = min(begin + 2, max(self._round_length_in(runner, cfg), begin + 1))
        return cfgs

    def _round_length_in(self, runner, cfg: dict) -> Union[int, float]:
        """The round length in the unit of the scheduler ``cfg``."""
        if cfg.get('by_epoch', True) == self.by_epoch:
            return self.round_length
        if self.by_epoch:  # an iteration-based scheduler in an epoch-based loop
            return self.round_length * len(runner.train_dataloader)
        return self.round_length  # an epoch-based scheduler in an iteration-based loop (unusual)

    def _round_scheduler_cfgs(self, runner) -> Optional[Union[list, dict]]:
        """The scheduler configs of a round."""
        if self.round_param_scheduler is not None:
            source, scale = self.round_param_scheduler, 1.0
        else:
            source, scale = runner.cfg.get('param_scheduler', None), self.round_length / self.initial
        if not source:
            return None
        if isinstance(source, dict) and 'type' not in source:  # one list per optimizer (OptimWrapperDict)
            return {name: self._stretch(cfgs, runner, scale) for name, cfgs in source.items()}
        return self._stretch(source, runner, scale)

    def _restart_schedule(self, runner) -> None:
        cfgs = self._round_scheduler_cfgs(runner)
        if cfgs:
            runner.param_schedulers = runner.build_param_scheduler(cfgs)

    @staticmethod
    def _reset_ema(runner) -> None:
        for hook in runner.hooks:
            if isinstance(hook, EMAHook) and hasattr(hook, 'ema_model'):
                hook.ema_model.module.load_state_dict(_unwrap(runner.model).state_dict())
                hook.ema_model.steps.zero_()  # the next update copies the weights

    # ---------------------------------------------------------------------------- evaluation, checkpoints
    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        """Record the metric for the current round, save the round's best checkpoint, write the summary.

        Args:
            runner (Runner): The runner.
            metrics (dict, optional): The validation metrics; ``self.metric`` among them.
        """
        if not self._training or not metrics or self.metric not in metrics:
            return
        value = float(metrics[self.metric])
        done = runner.epoch if self.by_epoch else runner.iter  # epochs/iterations done
        r = self.round_of(max(done - 1, 0))
        previous = [e['value'] for e in self.history if e['round'] == r]
        self.history.append(dict(round=r, epoch=runner.epoch, iter=runner.iter, value=value))
        runner.logger.info(f'SiRi: round {r}, {self._unit()} {done}: {self.metric} = {value:.4f}')
        better = not previous or (value > max(previous) if self.rule == 'greater' else value < min(previous))
        if better and self.save_round_checkpoints:
            runner.save_checkpoint(runner.work_dir, f'siri_round{r}_best.pth', save_optimizer=False,
                                   save_param_scheduler=False, meta=dict(epoch=runner.epoch, iter=runner.iter))
        self._write_summary(runner)

    def after_train_epoch(self, runner) -> None:
        """Save the last checkpoint of a round that ends with this epoch (epoch-based loops)."""
        if self.by_epoch:
            self._maybe_save_last(runner, runner.epoch + 1)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Save the last checkpoint of a round that ends with this iteration (iteration-based loops)."""
        if not self.by_epoch:
            self._maybe_save_last(runner, runner.iter + 1)

    def _maybe_save_last(self, runner, done: int) -> None:
        """Save ``siri_round{r}_last.pth`` when ``done`` epochs/iterations end round ``r``."""
        r = self.round_of(done - 1)
        if done == self.round_end(r) and self.save_round_checkpoints:
            runner.save_checkpoint(runner.work_dir, f'siri_round{r}_last.pth', save_optimizer=False,
                                   save_param_scheduler=False, by_epoch=self.by_epoch)

    def summary(self) -> dict:
        """The metric per round: ``rounds`` maps each round to its ``best``, ``last`` and ``values``;
        ``history`` lists every validation (round, epoch, iter, value)."""
        per_round: Dict[int, List[float]] = {}
        for e in self.history:
            per_round.setdefault(e['round'], []).append(e['value'])
        pick = max if self.rule == 'greater' else min
        return dict(metric=self.metric, rule=self.rule, keep=list(self.keep), reinit=self.reinit, unit=self._unit(),
                    initial=self.initial, round_length=self.round_length, num_rounds=self.num_rounds,
                    rounds={str(r): dict(best=pick(v), last=v[-1], values=v) for r, v in sorted(per_round.items())},
                    history=self.history)

    def _write_summary(self, runner) -> None:
        if is_main_process():
            atomic_write_text(osp.join(runner.work_dir, SUMMARY_FILE), json.dumps(self.summary(), indent=1))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the round state in ``checkpoint['meta']['siri']``.

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The checkpoint about to be saved.
        """
        checkpoint.setdefault('meta', {})['siri'] = dict(
            round=self.round, last_reinit=self.last_reinit, by_epoch=self.by_epoch,
            history=copy.deepcopy(self.history))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """On resume: restore the round, the history, and the round's schedulers (the runner then loads
        their state from the checkpoint).

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The loaded checkpoint.
        """
        if not runner._resume:
            return
        meta = checkpoint.get('meta', {})
        done = meta.get('epoch' if self.by_epoch else 'iter', 0)
        state = meta.get('siri')
        if state is None:
            self.round = self.round_of(max(done - 1, 0))
            self.last_reinit = self.round_start(self.round)
            runner.logger.warning(f'SiRi: the checkpoint has no SiRi state; assuming round {self.round}')
            history: List[dict] = []
        else:
            self.round, self.last_reinit = int(state['round']), int(state['last_reinit'])
            history = list(state.get('history', []))
        # Validations after the checkpoint was saved (e.g. the one right after an epoch) are in the summary of
        # the run that saved it: in this work dir, or next to the checkpoint (a run resumed in another work dir,
        # e.g. a Table 2 variant from siri_round0_last.pth).
        for summary_file in _run_files(runner, SUMMARY_FILE):
            if not osp.isfile(summary_file):
                continue
            try:
                with open(summary_file) as f:
                    logged = [dict(round=int(e['round']), epoch=int(e['epoch']), iter=int(e['iter']),
                                   value=float(e['value']))
                              for e in json.load(f).get('history', []) if e['iter'] <= meta.get('iter', 0)]
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
                runner.logger.warning(f'SiRi: {summary_file} is unreadable ({type(err).__name__}: {err}); the '
                                      'history comes from the checkpoint, and a validation missing from it is '
                                      'run again')
                continue
            if len(logged) > len(history) and logged[:len(history)] == history:
                history = logged
                break
        self.history = history
        if self.round > 0:
            self._restart_schedule(runner)


@torch.no_grad()
def _fresh_init(model: nn.Module, keep: Sequence[str]) -> List[str]:
    """New random values for everything outside ``keep``: ``reset_parameters`` of every module (children first), then
    ``init_weights`` (``init_cfg``, pretrained weights included) of the top-level modules that hold
    re-initialized tensors. Kept tensors are restored afterwards, so ``keep`` may name nested modules.

    Returns:
        list[str]: Trainable re-initialized parameters whose values did not change (nothing initializes them).
    """
    kept = {n: t.detach().clone() for n, t in _named_tensors(model) if _matches(n, keep)}
    fingerprint = {n: (p.double().sum().item(), p.double().abs().sum().item())
                   for n, p in model.named_parameters() if p.requires_grad and not _matches(n, keep)}
    for name, root in model.named_children():
        if all(_matches(f'{name}.{n}', keep) for n, _ in _named_tensors(root)):
            continue  # nothing to re-initialize here (or no tensors at all)
        # Children before their parents, so that a parent's reset_parameters (e.g. MultiheadSDPA zeroing the
        # bias of its out_proj) has the last word, as in its constructor.
        for sub in reversed(list(root.modules())):
            if callable(getattr(sub, 'reset_parameters', None)):
                sub.reset_parameters()
            if isinstance(sub, BaseModule):
                sub._is_init = False
        if callable(getattr(root, 'init_weights', None)):
            root.init_weights()
    tensors = dict(_named_tensors(model))
    for n, value in kept.items():
        tensors[n].copy_(value)
    return [n for n, p in model.named_parameters() if n in fingerprint
            and (p.double().sum().item(), p.double().abs().sum().item()) == fingerprint[n]]
