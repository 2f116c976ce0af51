"""SiRiHook (mmvlg/engine/hooks/siri_hook.py) with real tiny runners, the SiRi configs (configs/siri/) and
tools/model_converters/strip_aux_decoder.py.

The runners train ``tiny_mdetr_config`` on a generated SynthRef of 2 scenes per split (4 training expressions,
batch 2: 2 iterations per epoch). Probe hooks registered at the highest and the lowest priority snapshot the
model, the optimizer state and the learning rates right before and right after the hook starts a round.
"""
import copy
import glob
import importlib.util
import json
import os
import os.path as osp
import socket
import subprocess
import sys
from typing import Dict, Iterable, List, Optional

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmvlg.engine.hooks import SiRiHook
from mmvlg.registry import MODELS
from mmvlg.testing import demo_grounding_batch, get_config, tiny_mdetr_config, tiny_synthref
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules, safe_load_checkpoint

register_all_modules()

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'), dict(type='PackGroundingInputs')]
LR = 1e-3
WARMUP_START = 0.1
# The iteration-based schedule of most tests: 4 initial iterations, then 2 rounds of 2 iterations.
INITIAL, ROUND, ROUNDS = 4, 2, 2
MAX_ITERS = INITIAL + ROUNDS * ROUND
KEEP = ('encoder', )


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Two cores are shared with other jobs: one thread is much faster than an oversubscribed two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    return tiny_synthref(str(tmp_path_factory.mktemp('synthref') / 'data'), num_scenes=2, image_size=64)


def _dataloader(root: str, split: str, test_mode: bool, batch_size: int = 2, infinite: bool = False) -> dict:
    # An iteration-based loop restarts a finite dataloader with a 2 s pause: InfiniteSampler avoids it.
    sampler = dict(type='InfiniteSampler' if infinite else 'DefaultSampler', shuffle=not test_mode)
    return dict(
        batch_size=batch_size, num_workers=0, sampler=sampler,
        dataset=dict(type='SynthRefDataset', data_root=root, ann_file=f'annotations/finetune_synthref_{split}.json',
                     data_prefix=dict(img='images/'), generate=None, test_mode=test_mode, pipeline=PIPELINE))


def deterministic_model() -> dict:
    """``tiny_mdetr_config`` without dropout: training is then a function of the data order only, so that a
    resumed run can be compared bit for bit with an uninterrupted one (MMEngine does not restore the torch
    generator on resume)."""
    model = tiny_mdetr_config()
    model['text_dropout'] = 0.0
    model['language_model']['model_config'].update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return model


def runner_cfg(work_dir: str, data_root: str, siri: dict, by_epoch: bool = False, max_length: int = MAX_ITERS,
               model: Optional[dict] = None, validate: bool = True, checkpoint_interval: Optional[int] = 1,
               extra_hooks: Iterable[dict] = (), **overrides) -> Config:
    """The config of a tiny runner with a SiRiHook; the loop length is in epochs or iterations. The runner
    saves a checkpoint every ``checkpoint_interval`` epochs/iterations (None: never; each save costs a yapf
    formatting of the config)."""
    if by_epoch:
        train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_length, val_interval=1)
        schedule = [dict(type='LinearLR', start_factor=WARMUP_START, by_epoch=True, begin=0, end=2,
                         convert_to_iter_based=True)]
    else:
        train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_length, val_interval=2)
        schedule = [dict(type='LinearLR', start_factor=WARMUP_START, by_epoch=False, begin=0, end=4)]
    cfg = dict(
        model=model or tiny_mdetr_config(), work_dir=work_dir,
        experiment_name=f'{osp.basename(osp.dirname(work_dir))}_{osp.basename(work_dir)}',
        default_scope='mmvlg', train_dataloader=_dataloader(data_root, 'train', False, infinite=not by_epoch),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=LR, weight_decay=1e-4), clip_grad=dict(max_norm=1.0),
                           paramwise_cfg=dict(custom_keys={'language_model': dict(lr_mult=0.5)})),
        param_scheduler=schedule,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=by_epoch, interval=checkpoint_interval or
                                           10 * max_length, save_last=checkpoint_interval is not None),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='SafeCheckpointHook'), dict(type='SiRiHook', **siri), *extra_hooks],
        log_processor=dict(by_epoch=by_epoch), randomness=dict(seed=0), env_cfg=dict(dist_cfg=dict(backend='gloo')))
    if validate:
        cfg.update(val_dataloader=_dataloader(data_root, 'val', True), val_cfg=dict(type='ValLoop'),
                   val_evaluator=dict(type='RefExpMetric'))
    cfg.update(overrides)
    return Config(cfg)


def _unwrap(runner):
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def _state(model) -> Dict[str, torch.Tensor]:
    return {n: t.detach().clone() for n, t in [*model.named_parameters(), *model.named_buffers()]}


class Probe(Hook):
    """Snapshots (model tensors, optimizer state by parameter name, learning rates) at the start of the given
    epochs/iterations; registered at the highest priority it sees the state before SiRiHook acts, at the
    lowest the state after."""

    def __init__(self, steps: Iterable[int], by_epoch: bool = False) -> None:
        self.steps, self.by_epoch = set(steps), by_epoch
        self.records: Dict[int, dict] = {}
        self.initial: Optional[Dict[str, torch.Tensor]] = None

    def before_train(self, runner) -> None:
        self.initial = _state(_unwrap(runner))

    def _snap(self, runner, step: int) -> None:
        model = _unwrap(runner)
        optimizer = runner.optim_wrapper.optimizer
        names = {id(p): n for n, p in model.named_parameters()}
        opt_state = {names[id(p)]: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
                     for p, s in optimizer.state.items() if s}
        ema = [h for h in runner.hooks if isinstance(h, EMAHook)]
        self.records[step] = dict(
            state=_state(model), opt_state=opt_state,
            lr=[g['lr'] for g in optimizer.param_groups], base_lr=[g['initial_lr'] for g in optimizer.param_groups],
            logged_base_lr=runner.optim_wrapper.get_lr().get('base_lr'),
            ema=None if not ema else (_state(ema[0].ema_model.module), int(ema[0].ema_model.steps)),
            schedulers=[(s.begin, s.end) for s in runner.param_schedulers])

    def before_train_epoch(self, runner) -> None:
        if self.by_epoch and runner.epoch in self.steps:
            self._snap(runner, runner.epoch)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self.by_epoch and runner.iter in self.steps:
            self._snap(runner, runner.iter)


def run(cfg: Config, steps: Iterable[int] = (), by_epoch: bool = False, hooks: Iterable[Hook] = ()):
    """Train a runner from ``cfg`` with probes before and after SiRiHook at ``steps`` (and ``hooks``)."""
    runner = Runner.from_cfg(cfg)
    before, after = Probe(steps, by_epoch), Probe(steps, by_epoch)
    runner.register_hook(before, 'HIGHEST')
    runner.register_hook(after, 'LOWEST')
    for hook in hooks:
        runner.register_hook(hook)
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, SiRiHook))
    return dict(runner=runner, hook=hook, before=before.records, after=after.records, initial=before.initial,
                work_dir=cfg.work_dir)


def is_kept(name: str) -> bool:
    return any(name == k or name.startswith(k + '.') for k in KEEP)


def trainable(runner) -> List[str]:
    return [n for n, p in _unwrap(runner).named_parameters() if p.requires_grad]


# ---------------------------------------------------------------------------------------------------------
# reinit='initial', iteration-based, reset_optimizer='reinitialized'; checkpoints every iteration (for resume)
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def initial_run(tmp_path_factory, data_root):
    work_dir = str(tmp_path_factory.mktemp('siri_initial'))
    siri = dict(initial=INITIAL, round_length=ROUND, num_rounds=ROUNDS, keep=KEEP, reinit='initial')
    return run(runner_cfg(work_dir, data_root, siri, model=deterministic_model()), steps=[INITIAL, INITIAL + ROUND])


def test_kept_carry_over_and_the_rest_is_restored(initial_run):
    names = trainable(initial_run['runner'])
    initial = initial_run['initial']
    assert any(is_kept(n) for n in names) and any(not is_kept(n) for n in names)
    for step in (INITIAL, INITIAL + ROUND):
        before, after = initial_run['before'][step]['state'], initial_run['after'][step]['state']
        for name, value in after.items():
            if is_kept(name):
                assert torch.equal(value, before[name]), name  # bit-identical across the re-initialization
            else:
                assert torch.equal(value, initial[name]), name  # the exact initial values (BN statistics too)
        for name in names:  # everything was trained before the round started
            assert not torch.equal(before[name], initial[name]), name
    hook = initial_run['hook']
    assert hook.round == ROUNDS and hook.reinitializations == [(1, INITIAL), (2, INITIAL + ROUND)]
    assert osp.isfile(osp.join(initial_run['work_dir'], 'siri_initial_state.pth'))


def test_optimizer_state_of_reinitialized_parameters_is_cleared(initial_run):
    names = set(trainable(initial_run['runner']))
    for step in (INITIAL, INITIAL + ROUND):
        before, after = initial_run['before'][step]['opt_state'], initial_run['after'][step]['opt_state']
        assert set(before) == names  # AdamW state for every parameter
        assert set(after) == {n for n in names if is_kept(n)}
        for name, state in after.items():
            assert state.keys() == before[name].keys()
            assert all(torch.equal(v, before[name][k]) for k, v in state.items()), name


def test_learning_rate_warm_up_restarts(initial_run):
    for step in (INITIAL, INITIAL + ROUND):
        before, after = initial_run['before'][step], initial_run['after'][step]
        assert before['lr'] == pytest.approx(before['base_lr'])  # the warm-up of the previous stage is over
        assert after['lr'] == pytest.approx([WARMUP_START * b for b in after['base_lr']])
        assert sorted(set(after['base_lr'])) == pytest.approx([LR * 0.5, LR])  # paramwise_cfg unchanged
        # What MMEngine logs as base_lr restarts too.
        assert before['logged_base_lr'] == pytest.approx([LR])
        assert after['logged_base_lr'] == pytest.approx([WARMUP_START * LR])
        # The initial warm-up of 4 iterations, stretched by round_length / initial = 2 / 4.
        assert after['schedulers'] == [(0, 2)]


def test_round_checkpoints_and_summary(initial_run):
    work_dir = initial_run['work_dir']
    for r in range(ROUNDS + 1):
        for kind in ('best', 'last'):
            assert osp.isfile(osp.join(work_dir, f'siri_round{r}_{kind}.pth')), (r, kind)
    # The last checkpoint of a round holds the weights with which the next round starts.
    for r, step in ((0, INITIAL), (1, INITIAL + ROUND)):
        ckpt = safe_load_checkpoint(osp.join(work_dir, f'siri_round{r}_last.pth'))
        assert ckpt['meta']['iter'] == step and ckpt['meta']['siri']['round'] == r
        assert 'optimizer' not in ckpt
        before = initial_run['before'][step]['state']
        for name, value in ckpt['state_dict'].items():
            assert torch.equal(value, before[name]), name
    last = safe_load_checkpoint(osp.join(work_dir, f'siri_round{ROUNDS}_last.pth'))
    assert last['meta']['iter'] == MAX_ITERS
    best = safe_load_checkpoint(osp.join(work_dir, 'siri_round1_best.pth'))
    assert best['meta']['iter'] == INITIAL + ROUND and best['meta']['siri']['round'] == 1
    # The runner's own checkpoints carry the round: iter_4 ends round 0, iter_5 is inside round 1.
    assert safe_load_checkpoint(osp.join(work_dir, 'iter_4.pth'))['meta']['siri']['round'] == 0
    assert safe_load_checkpoint(osp.join(work_dir, 'iter_5.pth'))['meta']['siri']['round'] == 1
    with open(osp.join(work_dir, 'siri_summary.json')) as f:
        summary = json.load(f)
    # One entry per validation (every 2 iterations): iterations 2 and 4 in round 0, 6 in round 1, 8 in round 2.
    assert [(e['round'], e['iter']) for e in summary['history']] == [(0, 2), (0, 4), (1, 6), (2, 8)]
    assert set(summary['rounds']) == {'0', '1', '2'} and len(summary['rounds']['0']['values']) == 2
    assert summary['metric'] == 'refexp/Prec@1' and summary['keep'] == list(KEEP)


def _resume(initial_run, data_root, tmp_path, checkpoint: str) -> dict:
    """Resume the run of ``initial_run`` from one of its checkpoints, in a new work dir."""
    siri = dict(initial=INITIAL, round_length=ROUND, num_rounds=ROUNDS, keep=KEEP, reinit='initial',
                save_round_checkpoints=False)
    cfg = runner_cfg(str(tmp_path / 'resumed'), data_root, siri, model=deterministic_model(), validate=False,
                     checkpoint_interval=None, resume=True, load_from=osp.join(initial_run['work_dir'], checkpoint))
    return run(cfg, steps=[INITIAL, INITIAL + ROUND])


def _assert_same_final_weights(resumed, initial_run):
    expected = _state(_unwrap(initial_run['runner']))
    for name, value in _state(_unwrap(resumed['runner'])).items():
        assert torch.equal(value, expected[name]), name


def test_resume_at_round_boundary_reinitializes_once(initial_run, data_root, tmp_path):
    resumed = _resume(initial_run, data_root, tmp_path, f'iter_{INITIAL}.pth')
    assert resumed['hook'].reinitializations == [(1, INITIAL), (2, INITIAL + ROUND)]
    after = resumed['after'][INITIAL]['state']
    for name, value in after.items():
        expected = initial_run['after'][INITIAL]['state'][name]
        assert torch.equal(value, expected), name
    # The snapshot of the initial values was found next to the checkpoint and copied to the new work dir.
    assert osp.isfile(tmp_path / 'resumed' / 'siri_initial_state.pth')
    _assert_same_final_weights(resumed, initial_run)


def test_resume_mid_round_does_not_reinitialize_again(initial_run, data_root, tmp_path):
    resumed = _resume(initial_run, data_root, tmp_path, f'iter_{INITIAL + 1}.pth')
    assert resumed['hook'].reinitializations == [(2, INITIAL + ROUND)]  # only the next round's start
    assert resumed['hook'].round == ROUNDS
    _assert_same_final_weights(resumed, initial_run)  # optimizer, schedule and round state were all restored


def test_resume_from_round_checkpoint_with_another_keep(initial_run, data_root, tmp_path):
    """A Table 2 variant retrained from the same initial stage: resume from ``siri_round0_last.pth`` (no
    optimizer state) with another selection of kept modules."""
    keep = ('decoder', 'query_embedding', 'bbox_head')
    siri = dict(initial=INITIAL, round_length=ROUND, num_rounds=ROUNDS, keep=keep, reinit='initial',
                reset_optimizer='all', save_round_checkpoints=False)
    round0 = osp.join(initial_run['work_dir'], 'siri_round0_last.pth')
    cfg = runner_cfg(str(tmp_path / 'variant'), data_root, siri, model=deterministic_model(), validate=False,
                     checkpoint_interval=None, resume=True, load_from=round0)
    resumed = run(cfg, steps=[INITIAL])
    assert resumed['hook'].reinitializations == [(1, INITIAL), (2, INITIAL + ROUND)]
    saved = safe_load_checkpoint(round0)['state_dict']
    initial = initial_run['initial']
    for name, value in resumed['after'][INITIAL]['state'].items():
        expected = saved[name] if name.startswith(tuple(k + '.' for k in keep)) else initial[name]
        assert torch.equal(value, expected), name
    assert not resumed['after'][INITIAL]['opt_state']
    # The checkpoint's history lacks the validation that followed its save (at iteration 4); the summary next
    # to it has it, so the round-0 figures of the variant's summary are complete.
    assert [(e['round'], e['iter']) for e in safe_load_checkpoint(round0)['meta']['siri']['history']] == [(0, 2)]
    assert [(e['round'], e['iter']) for e in resumed['hook'].history] == [(0, 2), (0, INITIAL)]


# ---------------------------------------------------------------------------------------------------------
# reinit='fresh' on multi-task SiRi with a pretrained text encoder, an EMA and reset_optimizer='all'
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def pretrained_text_encoder(tmp_path_factory):
    """A tiny BERT saved with ``save_pretrained`` (the local "pretrained" language backbone) and its weights."""
    folder = str(tmp_path_factory.mktemp('tiny_bert'))
    torch.manual_seed(123)
    encoder = MODELS.build(tiny_mdetr_config()['language_model'])
    encoder.model.save_pretrained(folder)
    encoder.tokenizer.save_pretrained(folder)
    return folder, {k: v.detach().clone() for k, v in encoder.model.state_dict().items()}


def multitask_model(text_encoder_folder: str, aux_decoder: bool = True) -> dict:
    model = tiny_mdetr_config(aux_decoder=aux_decoder)
    model['language_model'] = dict(type='HFTextEncoder', name_or_path=text_encoder_folder, max_length=31)
    return model


@pytest.fixture(scope='module')
def fresh_run(tmp_path_factory, data_root, pretrained_text_encoder):
    work_dir = str(tmp_path_factory.mktemp('siri_fresh'))
    siri = dict(initial=2, round_length=2, num_rounds=1, keep=KEEP, reinit='fresh', reset_optimizer='all')
    ema = dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.1, update_buffers=True, priority=49)
    cfg = runner_cfg(work_dir, data_root, siri, max_length=4, model=multitask_model(pretrained_text_encoder[0]),
                     validate=False, checkpoint_interval=4, extra_hooks=[ema])
    return run(cfg, steps=[2])


def test_fresh_reinit_draws_new_values_and_reloads_pretrained(fresh_run, pretrained_text_encoder):
    before, after = fresh_run['before'][2]['state'], fresh_run['after'][2]['state']
    initial, pretrained = fresh_run['initial'], pretrained_text_encoder[1]
    names = trainable(fresh_run['runner'])
    assert any(n.startswith('aux_decoder.') for n in names) and any(n.startswith('aux_head.') for n in names)
    for name in names:
        value = after[name]
        if is_kept(name):
            assert torch.equal(value, before[name]), name
        elif name.startswith('language_model.model.'):
            assert torch.equal(value, pretrained[name[len('language_model.model.'):]]), name
            assert not torch.equal(before[name], value), name
        else:  # both decoders, their heads, the queries, the visual backbone, the projections
            assert torch.isfinite(value).all(), name
            assert not torch.equal(value, before[name]), name
            if initial[name].unique().numel() > 1:  # a random draw: a new one
                assert not torch.equal(value, initial[name]), name
            else:  # a constant (LayerNorm/BatchNorm weights, zero biases): the constant again
                assert torch.equal(value, initial[name]), name
    assert fresh_run['hook'].reinitializations == [(1, 2)]


def test_reset_all_optimizer_state_and_ema(fresh_run):
    assert fresh_run['before'][2]['opt_state'] and not fresh_run['after'][2]['opt_state']
    after = fresh_run['after'][2]
    assert after['lr'] == pytest.approx([WARMUP_START * b for b in after['base_lr']])
    ema_state, ema_steps = after['ema']
    assert ema_steps == 0  # the next EMA update copies the weights
    for name, value in ema_state.items():
        assert torch.equal(value, after['state'][name]), name
    before_ema, before_steps = fresh_run['before'][2]['ema']
    assert before_steps == 2 and not torch.equal(before_ema['decoder.norm.weight'], ema_state['decoder.norm.weight'])


def _load_tool(name: str):
    path = osp.join(REPO_ROOT, 'tools', 'model_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_strip_aux_decoder(fresh_run, pretrained_text_encoder, tmp_path, capsys):
    """The deployment checkpoint of multi-task SiRi loads into the single-decoder model, which predicts as
    the multi-task model does and has as many parameters as a single-decoder model."""
    src = osp.join(fresh_run['work_dir'], 'iter_4.pth')
    dst = str(tmp_path / 'deploy' / 'siri-mt.pth')
    assert _load_tool('strip_aux_decoder').main([src, dst]) == 0
    assert 'removed' in capsys.readouterr().out
    full, stripped = safe_load_checkpoint(src), safe_load_checkpoint(dst)
    assert {'optimizer', 'param_schedulers', 'ema_state_dict'} <= set(full)
    assert set(stripped) == {'meta', 'state_dict'}
    assert not any(k.startswith(('aux_decoder.', 'aux_head.')) for k in stripped['state_dict'])
    assert 'aux_decoder' not in Config.fromstring(stripped['meta']['cfg'], '.py').model

    folder = pretrained_text_encoder[0]
    multi = MODELS.build(multitask_model(folder, aux_decoder=True))
    multi.load_state_dict(full['state_dict'], strict=True)
    single = MODELS.build(multitask_model(folder, aux_decoder=False))
    missing, unexpected = single.load_state_dict(stripped['state_dict'], strict=True)
    assert not missing and not unexpected
    aux = sum(p.numel() for n, p in multi.named_parameters() if n.startswith(('aux_decoder.', 'aux_head.')))
    assert aux > 0
    assert sum(p.numel() for p in single.parameters()) == sum(p.numel() for p in multi.parameters()) - aux

    batch = demo_grounding_batch(2)
    single.eval(), multi.eval()
    with torch.no_grad():
        a = single(**single.data_preprocessor(copy.deepcopy(batch), False), mode='predict')
        b = multi(**multi.data_preprocessor(copy.deepcopy(batch), False), mode='predict')
        raw_a = single(**single.data_preprocessor(copy.deepcopy(batch), False), mode='tensor')
        raw_b = multi(**multi.data_preprocessor(copy.deepcopy(batch), False), mode='tensor')
    for x, y in zip(a, b):
        assert torch.equal(x.pred_instances.bboxes, y.pred_instances.bboxes)
        assert torch.equal(x.pred_instances.scores, y.pred_instances.scores)
    assert all(torch.equal(x, y) for x, y in zip(raw_a, raw_b))


# ---------------------------------------------------------------------------------------------------------
# Epoch-based loop
# ---------------------------------------------------------------------------------------------------------
def test_epoch_based_rounds(tmp_path, data_root):
    siri = dict(initial=2, round_length=1, num_rounds=1, keep=KEEP)
    out = run(runner_cfg(str(tmp_path), data_root, siri, by_epoch=True, max_length=3, checkpoint_interval=None),
              steps=[2], by_epoch=True)
    before, after, initial = out['before'][2], out['after'][2], out['initial']
    for name, value in after['state'].items():
        assert torch.equal(value, before['state'][name] if is_kept(name) else initial[name]), name
    assert set(after['opt_state']) == {n for n in before['opt_state'] if is_kept(n)}
    assert after['lr'] == pytest.approx([WARMUP_START * b for b in after['base_lr']])
    # A warm-up of 2 epochs (4 iterations), stretched by 1 / 2: 2 iterations.
    assert before['schedulers'] == [(0, 4)] and after['schedulers'] == [(0, 2)]
    assert out['hook'].reinitializations == [(1, 2)]
    for r, epoch in ((0, 2), (1, 3)):
        ckpt = safe_load_checkpoint(str(tmp_path / f'siri_round{r}_last.pth'))
        assert ckpt['meta']['epoch'] == epoch and ckpt['meta']['siri']['round'] == r
    round0_last = safe_load_checkpoint(str(tmp_path / 'siri_round0_last.pth'))['state_dict']
    assert torch.equal(round0_last['decoder.norm.weight'], before['state']['decoder.norm.weight'])
    with open(tmp_path / 'siri_summary.json') as f:
        summary = json.load(f)
    assert [(e['round'], e['epoch']) for e in summary['history']] == [(0, 1), (0, 2), (1, 3)]
    assert osp.isfile(tmp_path / 'siri_round1_best.pth')


# ---------------------------------------------------------------------------------------------------------
# Mixed precision: AmpOptimWrapper (bfloat16 autocast on the CPU)
# ---------------------------------------------------------------------------------------------------------
def test_rounds_under_amp(tmp_path, data_root, monkeypatch):
    """AmpOptimWrapper refuses to build without an accelerator; on the CPU it would autocast to bfloat16
    (its GradScaler is then a pass-through), so the check is lifted to run the mixed-precision path here.
    The rounds behave as in full precision: the weights stay float32 and the kept ones carry over, the
    others get their initial values back, and the optimizer state of the latter is cleared; the wrapper's
    loss-scaler state is saved with the optimizer and the run resumes from it."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)

    class DtypeProbe(Hook):
        """Records the dtype of the decoder's output in every training forward."""

        def __init__(self):
            self.dtypes, self.handle = [], None

        def before_train(self, runner):
            self.handle = _unwrap(runner).decoder.register_forward_hook(
                lambda module, args, output: self.dtypes.append(
                    (output[0] if isinstance(output, (tuple, list)) else output).dtype))

        def after_train(self, runner):
            self.handle.remove()

    siri = dict(initial=2, round_length=1, num_rounds=1, keep=KEEP, reinit='initial')
    amp = dict(type='AmpOptimWrapper', dtype='bfloat16', optimizer=dict(type='AdamW', lr=LR, weight_decay=1e-4),
               clip_grad=dict(max_norm=1.0))
    cfg = runner_cfg(str(tmp_path / 'amp'), data_root, siri, max_length=3, model=deterministic_model(),
                     validate=False, checkpoint_interval=1, optim_wrapper=amp)
    dtypes = DtypeProbe()
    out = run(cfg, steps=[2], hooks=[dtypes])
    runner = out['runner']

    assert dtypes.dtypes and set(dtypes.dtypes) == {torch.bfloat16}  # the forward really ran autocast
    initial, b, a = out['initial'], out['before'][2], out['after'][2]
    for name, value in a['state'].items():
        assert value.dtype == initial[name].dtype, name  # no parameter or buffer was cast
        assert torch.equal(value, b['state'][name] if is_kept(name) else initial[name]), name
    names = set(trainable(runner))
    assert set(b['opt_state']) == names and set(a['opt_state']) == {n for n in names if is_kept(n)}
    assert a['lr'] == pytest.approx([WARMUP_START * x for x in a['base_lr']])

    ckpt = safe_load_checkpoint(str(tmp_path / 'amp' / 'iter_2.pth'))
    assert 'loss_scaler' in ckpt['optimizer'] and ckpt['meta']['siri']['round'] == 0
    resumed = run(runner_cfg(str(tmp_path / 'resumed'), data_root, dict(siri, save_round_checkpoints=False),
                             max_length=3, model=deterministic_model(), validate=False, checkpoint_interval=None,
                             optim_wrapper=amp, resume=True, load_from=str(tmp_path / 'amp' / 'iter_2.pth')),
                  steps=[2])
    assert resumed['hook'].reinitializations == [(1, 2)]  # the boundary checkpoint re-initializes once
    final = _state(_unwrap(runner))
    for name, value in _state(_unwrap(resumed['runner'])).items():
        assert torch.equal(value, final[name]), name


# ---------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('by_epoch', [False, True])
def test_loop_length_must_match_the_rounds(tmp_path, data_root, by_epoch):
    siri = dict(initial=2, round_length=2, num_rounds=2)
    runner = Runner.from_cfg(runner_cfg(str(tmp_path), data_root, siri, by_epoch=by_epoch, max_length=5,
                                        validate=False))
    key = 'train_cfg.max_epochs' if by_epoch else 'train_cfg.max_iters'
    with pytest.raises(ValueError, match=rf'{key}=5.*2 \+ 2 \* 2 = 6'):
        runner.train()


def test_invalid_arguments(tmp_path, data_root):
    with pytest.raises(ValueError, match='reinit'):
        SiRiHook(2, 2, 1, reinit='random')
    with pytest.raises(ValueError, match='round_length'):
        SiRiHook(2, 0, 1)
    runner = Runner.from_cfg(runner_cfg(str(tmp_path), data_root, dict(initial=2, round_length=1, num_rounds=2,
                                                                       keep=('encoders', )),
                                        max_length=4, validate=False))
    with pytest.raises(ValueError, match="keep prefix 'encoders'"):
        runner.train()


def test_validation_only_runs_are_left_alone(tmp_path, data_root):
    """``runner.val()`` with a SiRi config (e.g. tools/test.py) builds no training loop and saves nothing."""
    runner = Runner.from_cfg(runner_cfg(str(tmp_path), data_root, dict(initial=2, round_length=2, num_rounds=1),
                                        max_length=4))
    runner.val()
    assert isinstance(runner._train_loop, dict)  # not built: its data may not even exist in a test-only setup
    assert not glob.glob(str(tmp_path / 'siri_*'))


# ---------------------------------------------------------------------------------------------------------
# Two processes (Gloo): the ranks stay identical after a fresh re-initialization
# ---------------------------------------------------------------------------------------------------------
DIST_CONFIG = """
custom_imports = dict(imports=['siri_test_hooks'], allow_failed_imports=False)
default_scope = 'mmvlg'
model = {model!r}
train_dataloader = {train_dataloader!r}
train_cfg = dict(type='IterBasedTrainLoop', max_iters=3, val_interval=1000)
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3), clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000, save_last=False),
                     logger=dict(type='LoggerHook', interval=1))
custom_hooks = [
    dict(type='SafeCheckpointHook'),
    dict(type='SiRiHook', initial=2, round_length=1, num_rounds=1, keep=('encoder', ), reinit='fresh'),
    dict(type='RankDesyncHook', iters=[2]),
    dict(type='RankStateDumpHook', iters=[2], before=[2]),
]
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                    reason='needs torch.distributed with the Gloo backend')
def test_two_processes_stay_identical_after_fresh_reinit(tmp_path, data_root):
    config = tmp_path / 'siri_dist.py'
    config.write_text(DIST_CONFIG.format(model=tiny_mdetr_config(),
                                         train_dataloader=_dataloader(data_root, 'train', False, batch_size=1,
                                                                      infinite=True)))
    work_dir = tmp_path / 'work'
    here = osp.dirname(osp.abspath(__file__))
    env = dict(os.environ, PORT=str(_free_port()), CUDA_VISIBLE_DEVICES='', PYTHON=sys.executable, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(p for p in (here, os.environ.get('PYTHONPATH')) if p))
    script = osp.join(REPO_ROOT, 'tools', 'dist_train.sh')
    if osp.isfile(script):
        command = ['bash', script, str(config), '2', '--work-dir', str(work_dir)]
    else:
        command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port',
                   env['PORT'], osp.join(REPO_ROOT, 'tools', 'train.py'), str(config), '--launcher', 'pytorch',
                   '--work-dir', str(work_dir), '--cfg-options', 'env_cfg.dist_cfg.backend=gloo']
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    dumps = [{tag: torch.load(work_dir / f'rank{rank}_{tag}.pth', weights_only=True)
              for tag in ('done2', 'iter2', 'end')} for rank in (0, 1)]
    # The generators of the ranks differ at the round start: without the broadcast the draws would differ.
    assert not torch.equal(dumps[0]['iter2']['draw'], dumps[1]['iter2']['draw'])
    reinitialized = 0
    for name, value in dumps[0]['iter2']['state'].items():
        assert torch.equal(value, dumps[1]['iter2']['state'][name]), name
        if not name.startswith('encoder.') and value.is_floating_point() and \
                not torch.equal(value, dumps[0]['done2']['state'][name]):
            reinitialized += 1
    assert reinitialized > 50
    for name, value in dumps[0]['end']['state'].items():
        if 'running_' not in name and 'num_batches_tracked' not in name:  # BN statistics are per rank under DDP
            assert torch.equal(value, dumps[1]['end']['state'][name]), name
    assert 'SiRi: round 1 starts at iter 2' in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------------------
# configs/siri/
# ---------------------------------------------------------------------------------------------------------
SIRI_CONFIGS = sorted(osp.relpath(p, osp.join(REPO_ROOT, 'configs'))
                      for p in glob.glob(osp.join(REPO_ROOT, 'configs', 'siri', '*.py')))
MODULES = ('backbone', 'neck', 'language_model', 'text_proj', 'encoder', 'decoder', 'query_embedding', 'bbox_head',
           'token_grounding_head')


def _siri_hook_cfg(cfg: Config) -> dict:
    hooks = [h for h in cfg.custom_hooks if h['type'] == 'SiRiHook']
    assert len(hooks) == 1
    return hooks[0]


def _check_schedule(cfg: Config, hook: dict) -> None:
    by_epoch = cfg.train_cfg.get('type', 'EpochBasedTrainLoop') == 'EpochBasedTrainLoop' or \
        cfg.train_cfg.get('by_epoch', False)
    total = cfg.train_cfg.max_epochs if by_epoch else cfg.train_cfg.max_iters
    assert total == hook['initial'] + hook['num_rounds'] * hook['round_length']
    # The config's schedule is the initial stage's: nothing in it runs past the initial stage.
    for scheduler in cfg.param_scheduler:
        if scheduler.get('by_epoch', True) == by_epoch:
            assert scheduler['end'] <= hook['initial'], scheduler


@pytest.fixture(scope='module')
def built_models() -> dict:
    return {}


@pytest.mark.parametrize('name', SIRI_CONFIGS)
def test_siri_configs_build(name, built_models):
    cfg = get_config(name)
    hook = _siri_hook_cfg(cfg)
    _check_schedule(cfg, hook)
    model_cfg = copy.deepcopy(cfg.model)
    if 'synthref' not in name:
        assert cfg.model.backbone.depth == 101 and cfg.model.language_model.name_or_path == 'roberta-base'
        model_cfg.language_model = dict(type='HFTextEncoder', model_config=dict(model_type='roberta'),
                                        tokenizer=dict(type='word', vocab='synthref'))
        assert hook['round_length'] == 30 and hook['num_rounds'] == 5
        assert hook['initial'] == (35 if 'siri-mt' in name else 55)
    else:
        assert cfg.train_dataloader.dataset.type == 'SynthRefDataset'
    assert ('aux_decoder' in cfg.model) == ('siri-mt' in name)
    key = repr(model_cfg.to_dict())
    if key not in built_models:  # the configs of the three RefCOCO data sets share their models
        built_models[key] = MODELS.build(model_cfg)
    model = built_models[key]
    names = [n for n, _ in [*model.named_parameters(), *model.named_buffers()]]
    keep = hook.get('keep', KEEP)
    for prefix in keep:
        assert prefix in MODULES and any(n.startswith(prefix + '.') for n in names), prefix
    reinitialized = {n.split('.')[0] for n in names if n.split('.')[0] not in keep}
    # every top-level module is named by Table 2's groups
    others = {'aux_decoder', 'aux_head', 'aux_query_norm', 'aux_query_embedding', 'query_constant',
              'grid_reference_boxes', 'data_preprocessor'}
    assert {n.split('.')[0] for n in names} <= set(MODULES) | others
    assert 'encoder' in keep or 'encoder' in reinitialized
    if 'siri-mt' in name:  # both decoders re-initialized, the encoder kept
        assert {'decoder', 'aux_decoder', 'aux_head'} <= reinitialized and tuple(keep) == ('encoder', )


def test_siri_table2_variants_cover_the_paper():
    """Table 2's modes (a)-(h): the kept modules of each SynthRef variant config."""
    visual, language, encoder = {'backbone', 'neck'}, {'language_model', 'text_proj'}, {'encoder'}
    # the SynthRef model's queries come from the tokens scored by token_grounding_head (no query_embedding)
    decoder = {'decoder', 'bbox_head', 'token_grounding_head'}
    expected = {'keep-vlencdec': visual | language | encoder | decoder, 'keep-vlenc': visual | language | encoder,
                'keep-vdec': visual | decoder, 'keep-venc': visual | encoder, 'keep-lenc': language | encoder,
                'keep-encdec': encoder | decoder, 'keep-dec': decoder, 'keep-enc': encoder}
    for variant, modules in expected.items():
        cfg = get_config(f'siri/siri_mdetr-star_r18-slim_bert-mini_{variant}_1xb32-3e-2x1e_synthref.py')
        assert set(_siri_hook_cfg(cfg)['keep']) == modules, variant


def test_small_data_configs():
    for fraction, schedule in ((0.1, '30e-2x10e'), (0.25, '12e-2x4e'), (0.5, '6e-2x2e')):
        name = f'siri/siri_mdetr-star_r18-slim_bert-mini_1xb32-{schedule}_synthref-{int(fraction * 100)}pct.py'
        cfg = get_config(name)
        assert cfg.train_dataloader.dataset.fraction == fraction
        assert 'fraction' not in cfg.val_dataloader.dataset  # evaluated on the full validation set


def test_metafile_lists_every_config():
    with open(osp.join(REPO_ROOT, 'configs', 'siri', 'metafile.yml')) as f:
        listed = sorted(osp.relpath(m['Config'], 'configs') for m in yaml.safe_load(f)['Models'])
    assert listed == SIRI_CONFIGS
    with open(osp.join(REPO_ROOT, 'model-index.yml')) as f:
        assert 'configs/siri/metafile.yml' in yaml.safe_load(f)['Import']


def test_strip_aux_keys_of_a_bare_state_dict():
    tool = _load_tool('strip_aux_decoder')
    state = {'encoder.w': torch.ones(2), 'aux_decoder.w': torch.ones(2), 'aux_head.b': torch.ones(1),
             'module.aux_query_embedding_learned.weight': torch.ones(1)}
    out, removed = tool.strip_aux_decoder(state)
    assert list(out['state_dict']) == ['encoder.w'] and len(removed) == 3
