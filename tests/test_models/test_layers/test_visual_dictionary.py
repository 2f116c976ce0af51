"""SOHO's visual dictionary: nearest-entry lookup, the two moving-average updates, the straight-through
gradient, identical dictionaries across 2 gloo processes, no collective call without torch.distributed, and the
entries in the state dict."""
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmvlg.models.layers import VisualDictionary
from mmvlg.registry import MODELS


def _dictionary(update='code', k=5, c=3, momentum=0.4, seed=0):
    torch.manual_seed(seed)
    return VisualDictionary(num_entries=k, embed_dims=c, momentum=momentum, update=update)


def test_registered():
    vd = MODELS.build(dict(type='VisualDictionary', num_entries=7, embed_dims=4))
    assert isinstance(vd, VisualDictionary) and vd.embed.shape == (7, 4)
    with pytest.raises(ValueError, match='update'):
        VisualDictionary(4, 2, update='ema')
    with pytest.raises(ValueError, match=r'\(n, 2\)'):
        VisualDictionary(4, 2)(torch.zeros(3, 5))


def test_lookup_is_brute_force_nearest_neighbour():
    vd = _dictionary(k=37, c=6).eval()
    x = torch.randn(200, 6) * 2
    brute = torch.tensor([min(range(37), key=lambda j: float(((v - vd.embed[j]) ** 2).sum())) for v in x])
    out = vd(x)
    assert torch.equal(out['indices'], brute)
    assert torch.allclose(out['quantized'], vd.embed[brute], atol=1e-6)  # (entry - x) + x rounds
    assert torch.equal(out['counts'], torch.bincount(brute, minlength=37).float())


def test_eval_mode_does_not_update():
    vd = _dictionary().eval()
    before = vd.embed.clone()
    vd(torch.randn(10, 3))
    assert torch.equal(vd.embed, before)
    vd.train()
    vd(torch.randn(10, 3), update=False)
    assert torch.equal(vd.embed, before)


def _hand_made_batch(vd):
    """Six vectors: three near entry 0, two near entry 2, one near entry 4; entries 1 and 3 unused."""
    with torch.no_grad():
        vd.embed.copy_(torch.tensor([[0., 0., 0.], [10., 10., 10.], [5., 0., 0.], [0., 10., -10.], [0., 0., 5.]]))
    x = torch.tensor([[0.1, 0.2, 0.0], [-0.3, 0.1, 0.2], [0.2, -0.1, -0.1],
                      [5.5, 0.1, 0.0], [4.5, -0.1, 0.2], [0.0, 0.3, 4.9]])
    return x, torch.tensor([0, 0, 0, 2, 2, 4])


def test_code_update_equals_formula():
    vd = _dictionary('code', momentum=0.4).train()
    x, assign = _hand_made_batch(vd)
    out = vd(x)
    assert torch.equal(out['indices'], assign)
    k, g, eps = 5, 0.4, 1e-5
    n = torch.tensor([3., 0., 2., 0., 1.])
    s = torch.zeros(5, 3).index_add_(0, assign, x)
    size, avg = (1 - g) * n, (1 - g) * s  # the moving averages start at zero
    smoothed = (size + eps) / (size.sum() + k * eps) * size.sum()
    assert torch.allclose(vd.cluster_size, size) and torch.allclose(vd.embed_avg, avg)
    assert torch.allclose(vd.embed, avg / smoothed[:, None], atol=1e-6)
    # a second step continues the averages
    x2 = vd.embed[[0, 2]] + 0.01
    idx2 = vd.lookup(x2)
    n2 = torch.bincount(idx2, minlength=5).float()
    s2 = torch.zeros(5, 3).index_add_(0, idx2, x2)
    size, avg = g * size + (1 - g) * n2, g * avg + (1 - g) * s2
    vd(x2)
    smoothed = (size + eps) / (size.sum() + k * eps) * size.sum()
    assert torch.allclose(vd.embed, avg / smoothed[:, None], atol=1e-5)


def test_paper_update_equals_eq4_on_non_empty_entries():
    vd = _dictionary('paper', momentum=0.4).train()
    x, assign = _hand_made_batch(vd)
    old = vd.embed.clone()
    vd(x)
    expected = old.clone()
    for j in (0, 2, 4):
        expected[j] = 0.4 * old[j] + 0.6 * x[assign == j].mean(dim=0)
    assert torch.allclose(vd.embed, expected, atol=1e-6)
    assert torch.equal(vd.embed[[1, 3]], old[[1, 3]])  # empty entries keep their value


def test_straight_through_gradient():
    vd = _dictionary(k=8, c=4).train()
    x = torch.randn(6, 4, requires_grad=True)
    before = vd.embed.clone()
    out = vd(x)
    assert torch.allclose(out['quantized'], before[out['indices']], atol=1e-6)  # the entries before the update
    w = torch.randn(6, 4)
    (out['quantized'] * w).sum().backward()
    assert torch.allclose(x.grad, w)  # d quantized / d x = identity
    assert not vd.embed.requires_grad and len(list(vd.parameters())) == 0


def test_usage_stats():
    stats = VisualDictionary.usage_stats(torch.tensor([2., 2., 0., 2., 2.]))
    assert stats['used'] == 4 and math.isclose(float(stats['perplexity']), 4.0, rel_tol=1e-5)
    stats = VisualDictionary.usage_stats(torch.tensor([0., 7., 0.]))
    assert stats['used'] == 1 and math.isclose(float(stats['perplexity']), 1.0, rel_tol=1e-5)
    out = _dictionary(k=5).eval()(torch.randn(20, 3))
    assert out['used'] == (out['counts'] > 0).sum()


def test_no_collective_call_without_dist(monkeypatch):
    assert not dist.is_initialized()

    def forbidden(*args, **kwargs):
        raise AssertionError('a collective call in a single-process run')

    for name in ('all_reduce', 'all_gather', 'broadcast', 'get_world_size'):
        monkeypatch.setattr(dist, name, forbidden)
    vd = _dictionary().train()
    before = vd.embed.clone()
    vd(torch.randn(12, 3))
    assert not torch.equal(vd.embed, before)


def test_state_dict_round_trip():
    vd = _dictionary('code', k=6, c=3).train()
    vd(torch.randn(30, 3))
    state = vd.state_dict()
    assert set(state) == {'embed', 'cluster_size', 'embed_avg'}
    other = _dictionary('code', k=6, c=3, seed=1)
    assert not torch.equal(other.embed, vd.embed)
    other.load_state_dict(state)
    for key in state:
        assert torch.equal(getattr(other, key), getattr(vd, key))
    x = torch.randn(9, 3)
    assert torch.equal(other.eval()(x)['indices'], vd.eval()(x)['indices'])


def _worker(rank, init_file, data, out):
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    for v, update in enumerate(('code', 'paper')):
        vd = VisualDictionary(num_entries=6, embed_dims=3, update=update).train()
        with torch.no_grad():
            vd.embed.copy_(data['init'])  # DDP starts every rank from rank 0's buffers
        for step in range(3):
            vd(data['x'][step, rank])
        out[v, rank].copy_(vd.embed)
    dist.destroy_process_group()


def test_identical_across_two_gloo_processes(tmp_path):
    """Both update rules in one spawn (a spawn costs seconds): after 3 steps on different vectors per rank the
    ranks' dictionaries are equal, and equal to that of one process that sees both ranks' vectors at each step."""
    torch.manual_seed(0)
    init = torch.randn(6, 3)
    x = torch.randn(3, 2, 10, 3) * 1.5
    data = dict(init=init, x=x)
    out = torch.zeros(2, 2, 6, 3).share_memory_()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    # spawn, not fork: forking after the parent's OpenMP pool has run can deadlock the children
    mp.start_processes(_worker, args=(str(tmp_path / 'init'), data, out), nprocs=2, join=True,
                       start_method='spawn')
    for v, update in enumerate(('code', 'paper')):
        assert torch.equal(out[v, 0], out[v, 1]), update
        single = VisualDictionary(num_entries=6, embed_dims=3, update=update).train()
        with torch.no_grad():
            single.embed.copy_(init)
        for step in range(3):
            single(x[step].reshape(-1, 3))
        assert torch.allclose(out[v, 0], single.embed, atol=1e-5), update
        assert not torch.equal(single.embed, init)


def test_lookup_in_float32_under_autocast():
    """Two entries 0.05 apart at norm 100: bfloat16 distances (autocast's matmul) pick the wrong one."""
    vd = VisualDictionary(num_entries=2, embed_dims=2).eval()
    with torch.no_grad():
        vd.embed.copy_(torch.tensor([[100.0, 3.0], [100.05, 3.0]]))
    x = torch.tensor([[100.04, 3.0]])
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        wrong = (x.pow(2).sum(1, keepdim=True) + vd.embed.pow(2).sum(1)[None] - 2.0 * x @ vd.embed.t()).argmin(1)
        out = vd(x)
    assert int(wrong) == 0  # what an unprotected lookup would answer
    assert int(out['indices']) == 1
