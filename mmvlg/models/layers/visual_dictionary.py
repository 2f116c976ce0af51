"""SOHO's visual dictionary (arXiv:2104.03135, section 3.2): an online clustering of visual feature vectors into k
entries, updated by moving averages, that represents each vector by its nearest entry."""
from typing import Dict, Optional

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmvlg.registry import MODELS

UPDATE_RULES = ('code', 'paper')


def _world_size() -> int:
    """The number of processes of the default group; 1 when torch.distributed is not initialized."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        return torch_dist.get_world_size()
    return 1


@MODELS.register_module()
class VisualDictionary(BaseModule):
    r"""A visual dictionary `(SOHO) <https://arxiv.org/abs/2104.03135>`_: ``num_entries`` vectors of
    ``embed_dims`` (the buffer ``embed``, kept in checkpoints and never trained by the optimizer).

    Each input vector :math:`v_i` is mapped to its nearest entry :math:`h_i = \arg\min_j \|v_i - d_j\|_2` (the
    paper's Eq. 2); the output is that entry with a straight-through gradient to the input,
    :math:`\mathrm{sg}[d_{h_i} - v_i] + v_i` (Eq. 5). In training mode every forward then updates the entries
    from the vectors assigned to them (the lookup uses the entries before the update):

    * ``update='code'`` (the authors' released code; the default): moving averages of the per-entry counts
      :math:`N_j \leftarrow \gamma N_j + (1-\gamma) n_j` and sums :math:`S_j \leftarrow \gamma S_j +
      (1-\gamma) \sum_{h_i=j} v_i` (buffers ``cluster_size`` and ``embed_avg``, zero at the start), and
      :math:`d_j = S_j / \tilde N_j` with the Laplace-smoothed counts
      :math:`\tilde N_j = (N_j + \epsilon) / (\sum_l N_l + k \epsilon) \cdot \sum_l N_l`. Entries that were never
      used thus become (close to) zero vectors after the first update, as in the released code.
    * ``update='paper'`` (Eq. 4): :math:`d_j \leftarrow \gamma d_j + (1-\gamma) \frac{1}{n_j}\sum_{h_i=j} v_i`
      for the entries with :math:`n_j > 0` only; the others keep their value.

    :math:`\gamma` is ``momentum`` (0.4 in the authors' R-18 config, constant: the code's ramp
    ``set_decay_updates`` is never called). Under distributed training the per-entry counts :math:`n_j` and sums
    are summed over the ranks (one ``all_reduce``) before the update, so that every rank computes the same
    dictionary; a run without an initialized process group makes no collective call.

    Args:
        num_entries (int): k, the number of entries (2048 in SOHO; 1024-8192 in its ablations).
        embed_dims (int): Width of the entries and of the input vectors.
        momentum (float): :math:`\gamma` in [0, 1), the weight of the old value. Defaults to 0.4.
        update (str): ``'code'`` or ``'paper'`` (see above). Defaults to ``'code'``.
        eps (float): :math:`\epsilon` of the Laplace smoothing (``'code'``). Defaults to 1e-5.
        init_std (float): The entries start as normal(0, ``init_std``) draws. Defaults to 1 (the code's).
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self, num_entries: int, embed_dims: int, momentum: float = 0.4, update: str = 'code',
                 eps: float = 1e-5, init_std: float = 1.0, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if update not in UPDATE_RULES:
            raise ValueError(f'VisualDictionary: update must be one of {UPDATE_RULES}, got {update!r}')
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'VisualDictionary: momentum must be in [0, 1), got {momentum}')
        if num_entries < 1 or embed_dims < 1:
            raise ValueError(f'VisualDictionary: need num_entries >= 1 and embed_dims >= 1, got {num_entries}, '
                             f'{embed_dims}')
        self.num_entries = int(num_entries)
        self.embed_dims = int(embed_dims)
        self.momentum = float(momentum)
        self.update_rule = update
        self.eps = float(eps)
        self.register_buffer('embed', torch.randn(num_entries, embed_dims) * init_std)
        self.register_buffer('cluster_size', torch.zeros(num_entries))
        self.register_buffer('embed_avg', torch.zeros(num_entries, embed_dims))

    # -------------------------------------------------------------------------------------------- lookup
    @torch.no_grad()
    def lookup(self, inputs: Tensor) -> Tensor:
        """(n,) long index of the nearest entry (squared Euclidean distance) of each of the (n, embed_dims)
        vectors (computed in float32); ties go to the lower index."""
        x = inputs.detach().float()
        embed = self.embed.float()
        with torch.autocast(device_type=x.device.type, enabled=False):  # fp32 distances also under AMP
            dist = x.pow(2).sum(dim=1, keepdim=True) + embed.pow(2).sum(dim=1)[None] - 2.0 * x @ embed.t()
        return dist.argmin(dim=1)

    def cosine_logits(self, tokens: Tensor) -> Tensor:
        """(..., num_entries) cosine similarities of (..., embed_dims) tokens to the entries (SOHO's MVM scores;
        no gradient reaches the entries)."""
        return F.normalize(tokens, dim=-1) @ F.normalize(self.embed.detach().to(tokens.dtype), dim=-1).t()

    @staticmethod
    def usage_stats(counts: Tensor) -> Dict[str, Tensor]:
        """``used`` (the number of entries with a count > 0) and ``perplexity`` (:math:`\\exp(-\\sum_j p_j \\log
        p_j)`, :math:`p = n / \\sum n`; k for a uniform use of k entries, 1 for a single entry) of (k,) counts."""
        counts = counts.detach().float()
        total = counts.sum()
        p = counts / total.clamp(min=1e-12)
        entropy = -(p * torch.log(p.clamp(min=1e-12))).sum()
        return dict(used=(counts > 0).sum().float(), perplexity=torch.exp(entropy) if total > 0 else entropy * 0)

    # -------------------------------------------------------------------------------------------- update
    @torch.no_grad()
    def statistics(self, inputs: Tensor, indices: Tensor, weights: Optional[Tensor] = None) -> tuple:
        """The per-entry counts (k,) and sums (k, embed_dims) of (n, embed_dims) vectors assigned to (n,)
        entries, each vector counted ``weights[i]`` times ((n,), None: once), summed over the ranks when
        torch.distributed is initialized with more than one process."""
        x = inputs.detach().float()
        if weights is None:
            counts = torch.bincount(indices, minlength=self.num_entries).float()
        else:
            w = weights.detach().float().to(x.device)
            counts = torch.bincount(indices, weights=w, minlength=self.num_entries).float()
            x = x * w[:, None]
        sums = x.new_zeros(self.num_entries, self.embed_dims).index_add_(0, indices, x)
        if _world_size() > 1:
            packed = torch.cat([counts[:, None], sums], dim=1)
            torch_dist.all_reduce(packed, op=torch_dist.ReduceOp.SUM)
            counts, sums = packed[:, 0].contiguous(), packed[:, 1:].contiguous()
        return counts, sums

    @torch.no_grad()
    def update(self, counts: Tensor, sums: Tensor) -> None:
        """Update the entries from the (k,) counts and (k, embed_dims) sums of one step (already summed over
        the ranks) by the rule of ``update`` (see the class docstring)."""
        g = self.momentum
        if self.update_rule == 'code':
            self.cluster_size.mul_(g).add_(counts.to(self.cluster_size), alpha=1.0 - g)
            self.embed_avg.mul_(g).add_(sums.to(self.embed_avg), alpha=1.0 - g)
            total = self.cluster_size.sum()
            if total <= 0:  # nothing was ever assigned (an empty first step): keep the initial entries
                return
            smoothed = (self.cluster_size + self.eps) / (total + self.num_entries * self.eps) * total
            self.embed.copy_(self.embed_avg / smoothed[:, None])
        else:
            used = counts > 0
            means = sums[used] / counts[used, None]
            self.embed[used] = g * self.embed[used] + (1.0 - g) * means.to(self.embed)

    def forward(self, inputs: Tensor, update: Optional[bool] = None, weights: Optional[Tensor] = None
                ) -> Dict[str, Tensor]:
        """Look up (and in training, update) the dictionary.

        Args:
            inputs (Tensor): (n, embed_dims) vectors (e.g. the valid visual tokens of a batch, flattened).
            update (bool, optional): Whether to update the entries from these vectors; None: in training mode.
            weights (Tensor, optional): (n,) how many times each vector counts in the update statistics (and in
                ``counts``); None: once each.

        Returns:
            dict: ``quantized`` (n, embed_dims) the nearest entries with the straight-through gradient to
            ``inputs``; ``indices`` (n,) long; ``counts`` (k,) the per-entry counts of this step (summed over the
            ranks when the entries were updated); ``used`` and ``perplexity`` (scalars, :meth:`usage_stats` of
            ``counts``).
        """
        if inputs.dim() != 2 or inputs.shape[1] != self.embed_dims:
            raise ValueError(f'VisualDictionary: inputs must be (n, {self.embed_dims}), got {tuple(inputs.shape)}')
        if weights is not None and tuple(weights.shape) != (inputs.shape[0], ):
            raise ValueError(f'VisualDictionary: weights must be ({inputs.shape[0]},), got {tuple(weights.shape)}')
        indices = self.lookup(inputs)
        entries = self.embed[indices].to(inputs.dtype)
        quantized = (entries - inputs).detach() + inputs
        do_update = self.training if update is None else bool(update)
        if do_update:
            counts, sums = self.statistics(inputs, indices, weights)
            self.update(counts, sums)
        else:
            counts = torch.bincount(indices, weights=None if weights is None else weights.float(),
                                    minlength=self.num_entries).float()
        out = dict(quantized=quantized, indices=indices, counts=counts)
        out.update(self.usage_stats(counts))
        return out

    def extra_repr(self) -> str:
        return (f'num_entries={self.num_entries}, embed_dims={self.embed_dims}, momentum={self.momentum}, '
                f'update={self.update_rule!r}')


__all__ = ['VisualDictionary', 'UPDATE_RULES']
