"""ITC under distributed training (2 CPU processes, gloo): the ranks' mean loss equals the single-process loss
of the whole batch, because every rank contrasts its rows against the gathered embeddings."""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from mmvlg.models.heads import ITCHead


def _worker(rank, init_file, img, txt, out):
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    head = ITCHead(img_dims=4, text_dims=4, embed_dims=4)
    i = img[2 * rank:2 * rank + 2].clone().requires_grad_(True)
    t = txt[2 * rank:2 * rank + 2].clone().requires_grad_(True)
    losses, local = head.loss(i, t, torch.tensor([0, 1]) + 2 * rank)
    losses['loss_itc'].backward()
    out[rank] = losses['loss_itc'].detach()
    assert local.shape == (2, 2)
    dist.destroy_process_group()


def test_itc_gathers_across_ranks(tmp_path):
    torch.manual_seed(0)
    img, txt = F.normalize(torch.randn(4, 4), dim=1), F.normalize(torch.randn(4, 4), dim=1)
    out = torch.zeros(2).share_memory_()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    # spawn, not fork: forking after the parent's OpenMP pool has run (any earlier test) can deadlock the children
    mp.start_processes(_worker, args=(str(tmp_path / 'init'), img, txt, out), nprocs=2, join=True,
                       start_method='spawn')
    s = img @ txt.t() / 0.07
    full = (F.cross_entropy(s, torch.arange(4)) + F.cross_entropy(s.t(), torch.arange(4))) / 2
    assert torch.allclose(out.mean(), full, atol=1e-5)


def _unequal_worker(rank, init_file, img, txt, out):
    """Rank 0 holds pairs 0-2, rank 1 pair 3 (X-VLM's region texts differ in number between ranks); in a second
    call rank 1 holds none and still takes part in the gathering."""
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    head = ITCHead(img_dims=4, text_dims=4, embed_dims=4)
    rows = [slice(0, 3), slice(3, 4)][rank]
    i = img[rows].clone().requires_grad_(True)
    t = txt[rows].clone().requires_grad_(True)
    losses, local = head.loss(i, t)
    losses['loss_itc'].backward()
    out[rank] = losses['loss_itc'].detach() * (3 if rank == 0 else 1)  # the sum over the rank's rows
    assert local.shape == ((3, 3) if rank == 0 else (1, 1))
    assert i.grad is not None and torch.isfinite(i.grad).all()
    rows = [slice(0, 4), slice(4, 4)][rank]
    losses, local = head.loss(img[rows], txt[rows])
    out[2 + rank] = losses['loss_itc'].detach()
    assert local.shape == ((4, 4) if rank == 0 else (0, 0))
    dist.destroy_process_group()


def test_itc_gathers_unequal_row_counts(tmp_path):
    torch.manual_seed(0)
    img, txt = F.normalize(torch.randn(4, 4), dim=1), F.normalize(torch.randn(4, 4), dim=1)
    out = torch.zeros(4).share_memory_()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    mp.start_processes(_unequal_worker, args=(str(tmp_path / 'init'), img, txt, out), nprocs=2, join=True,
                       start_method='spawn')
    s = img @ txt.t() / 0.07
    full = (F.cross_entropy(s, torch.arange(4)) + F.cross_entropy(s.t(), torch.arange(4))) / 2
    assert torch.allclose(out[:2].sum() / 4, full, atol=1e-5)
    assert torch.allclose(out[2], full, atol=1e-5) and out[3] == 0
