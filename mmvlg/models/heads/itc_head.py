"""Image-text contrastive (ITC) head: dual-encoder embeddings and the in-batch InfoNCE loss."""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.utils import OptConfigType
from mmengine.dist import get_rank, get_world_size
from mmengine.model import BaseModule
from torch import Tensor

from mmvlg.registry import MODELS

from ..layers.dual_stream_pooler import DualStreamPooler


def gather_with_grad(x: Tensor) -> Tensor:
    """All-gather (bs, ...) along the batch across ranks, keeping the gradient of the local part
    (``torch.distributed.nn.all_gather``); the input itself when not distributed."""
    if get_world_size() == 1:
        return x
    from torch.distributed.nn import all_gather
    return torch.cat(all_gather(x.contiguous()), dim=0)


def gather_rows_with_grad(x: Tensor) -> Tuple[Tensor, int]:
    """All-gather (n, ...) rows across ranks when n may differ between ranks (e.g. X-VLM's region texts, or the
    samples of a batch that have a caption), keeping the gradient of the local part.

    The row counts are gathered first, each rank's rows are padded to the largest count for the collective and
    the padding is dropped again; with equal counts this is :func:`gather_with_grad`.

    Returns:
        tuple: the rows of all ranks in rank order (sum of n, ...) and the offset of this rank's rows in them
        (the input itself and 0 when not distributed).
    """
    world = get_world_size()
    if world == 1:
        return x, 0
    import torch.distributed as dist
    from torch.distributed.nn import all_gather
    count = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    counts = [int(c) for c in counts]
    most = max(counts)
    if most > x.shape[0]:
        x = torch.cat([x, x.new_zeros((most - x.shape[0], *x.shape[1:]))], dim=0)
    parts = all_gather(x.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts)], dim=0), sum(counts[:get_rank()])


@MODELS.register_module()
class ITCHead(BaseModule):
    r"""Image-text contrastive (ITC) learning: FIBER's dual encoder (fusion off; arXiv:2206.07643 section 3.2),
    X-VLM's, ALBEF's, ... with their own pooling and projections.

    The image and text tokens are projected to ``embed_dims`` and pooled by ``pooler`` (a
    :class:`~mmvlg.models.layers.DualStreamPooler` by default: FIBER's, mean of the image tokens and first text
    token, each through a dense + tanh pooler as the authors' ``itc_pooler``; its parts, e.g. ``'cls'``/``'mean'``
    pooling, no tanh pooler, an MLP projection, are options) and L2-normalized.

    With ``s = <v_i, t_j> / tau`` and a learnable temperature ``tau`` (0.07 at start,
    clamped to ``temperature_range``), the loss is the mean of the image-to-text and text-to-image cross
    entropies over in-batch negatives (:math:`N^2 - N` negative pairs). Under distributed training the
    embeddings of all ranks are gathered (with gradients), so every rank's rows are contrasted against the
    global batch; the ranks may hold different numbers of pairs (:func:`gather_rows_with_grad`), also none (a
    zero loss that keeps the graph, and the rank still takes part in the gathering). Pairs showing the same
    image (same ``img_id``, e.g. two captions of one COCO image) are all positives, the target being uniform over them.

    The authors' code adds ALBEF's 4096-entry feature queue (of past batches, without momentum encoder); this
    head uses the (gathered) batch only, as the paper describes.

    Args:
        img_dims (int): Width of the image tokens.
        text_dims (int): Width of the text tokens.
        embed_dims (int): Embedding width. Defaults to 768.
        temperature (float): Initial temperature. Defaults to 0.07.
        learnable_temperature (bool): Learn it. Defaults to True.
        temperature_range (tuple): Clamp range of the temperature, applied before each use. Defaults to
            (0.001, 1.0); X-VLM's code clamps to (0.001, 0.5).
        gather (bool): Gather the embeddings across ranks. Defaults to True.
        loss_weight (float): Weight of ``loss_itc``. Defaults to 1.
        pooler (dict, optional): The projections and pooling (``img_dims``, ``text_dims`` and ``embed_dims``
            filled in), e.g. ``dict(type='DualStreamPooler', image_pooling='cls', tanh_pooler=False,
            pool_first=True)`` (X-VLM). Defaults to ``dict(type='DualStreamPooler')`` (FIBER). Its parameters
            are ``proj.*`` (FIBER: ``proj.text_proj``, ``proj.image_proj``, ``proj.{text,image}_pooler.dense``).
    """

    def __init__(self, img_dims: int, text_dims: int, embed_dims: int = 768, temperature: float = 0.07,
                 learnable_temperature: bool = True, temperature_range: Sequence[float] = (0.001, 1.0),
                 gather: bool = True, loss_weight: float = 1.0, pooler: OptConfigType = None, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        pooler = dict(type=DualStreamPooler) if pooler is None else dict(pooler)
        self.proj = MODELS.build(dict(dict(img_dims=img_dims, text_dims=text_dims, embed_dims=embed_dims), **pooler))
        self.embed_dims = embed_dims
        self.temperature = torch.nn.Parameter(torch.tensor(float(temperature)),
                                              requires_grad=learnable_temperature)
        self.temperature_range = tuple(temperature_range)
        self.gather = gather
        self.loss_weight = loss_weight

    def forward(self, img_tokens: Tensor, img_valid: Optional[Tensor], text_tokens: Tensor,
                text_valid: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """L2-normalized embeddings.

        Args:
            img_tokens (Tensor): (bs, N, C_i) image tokens.
            img_valid (Tensor, optional): (bs, N) bool, False at padded image positions.
            text_tokens (Tensor): (bs, L, C_t) text tokens.
            text_valid (Tensor, optional): (bs, L) bool, False at padding (for a pooler that averages text).

        Returns:
            tuple: image (bs, D) and text (bs, D) embeddings of unit norm.
        """
        out = self.proj(img_tokens, img_valid, text_tokens, text_valid)
        return F.normalize(out['image_cls'], dim=-1), F.normalize(out['text_cls'], dim=-1)

    def embed_image(self, img_tokens: Tensor, img_valid: Optional[Tensor] = None) -> Tensor:
        """(bs, D) L2-normalized image embeddings alone (no text needed: the pooler's streams are independent)."""
        return F.normalize(self.proj.pool_image(img_tokens, img_valid)[0], dim=-1)

    def embed_text(self, text_tokens: Tensor, text_valid: Optional[Tensor] = None) -> Tensor:
        """(bs, D) L2-normalized text embeddings alone."""
        return F.normalize(self.proj.pool_text(text_tokens, text_valid)[0], dim=-1)

    def tau(self) -> Tensor:
        """The temperature, clamped (in place) to ``temperature_range`` when outside it. The in-place clamp runs
        only when needed, so that several losses of one iteration (X-VLM's image and region levels) can use the
        temperature without invalidating each other's graphs."""
        low, high = self.temperature_range
        if not low <= float(self.temperature) <= high:
            with torch.no_grad():
                self.temperature.clamp_(low, high)
        return self.temperature

    def similarity(self, img_emb: Tensor, text_emb: Tensor) -> Tensor:
        """(n_img, n_text) cosine similarities divided by the temperature."""
        return img_emb @ text_emb.t() / self.tau()

    def loss(self, img_emb: Tensor, text_emb: Tensor, img_ids: Optional[Tensor] = None
             ) -> Tuple[Dict[str, Tensor], Tensor]:
        """The contrastive loss.

        Args:
            img_emb (Tensor): (bs, D) normalized image embeddings of this rank.
            text_emb (Tensor): (bs, D) normalized text embeddings, pair i = (image i, text i).
            img_ids (Tensor, optional): (bs,) int64 image ids; pairs with equal ids are positives.

        Returns:
            tuple: ``dict(loss_itc=...)`` and the local (bs, bs) image-to-text similarities (detached), from
            which ITM's hard negatives are drawn.
        """
        bs = img_emb.shape[0]
        gather = self.gather and get_world_size() > 1
        if gather:
            all_img, offset = gather_rows_with_grad(img_emb)
            all_text, _ = gather_rows_with_grad(text_emb)
        else:
            all_img, all_text, offset = img_emb, text_emb, 0
        if img_ids is None:  # every pair its own image, globally
            img_ids = torch.arange(bs, device=img_emb.device) + offset
        all_ids = gather_rows_with_grad(img_ids)[0] if gather else img_ids
        if bs == 0:  # no pair on this rank (it took part in the gathering): a zero loss that keeps the graph
            zero = (img_emb.sum() + text_emb.sum()) * 0.0 + self.temperature * 0.0
            return dict(loss_itc=zero), img_emb.new_zeros((0, 0))
        tau = self.tau()
        sim_i2t = img_emb @ all_text.t() / tau  # (bs, world*bs)
        sim_t2i = text_emb @ all_img.t() / tau
        pos = (img_ids[:, None] == all_ids[None, :]).float()
        pos[torch.arange(bs), offset + torch.arange(bs)] = 1.0
        target = pos / pos.sum(dim=1, keepdim=True)
        loss_i2t = -(F.log_softmax(sim_i2t, dim=1) * target).sum(dim=1).mean()
        loss_t2i = -(F.log_softmax(sim_t2i, dim=1) * target).sum(dim=1).mean()
        local = sim_i2t[:, offset:offset + bs].detach()
        return dict(loss_itc=self.loss_weight * (loss_i2t + loss_t2i) / 2), local
