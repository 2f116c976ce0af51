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
