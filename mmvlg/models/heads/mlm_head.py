"""Masked language modelling (MLM) head over the fused text stream."""
from typing import Dict

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS


@MODELS.register_module()
class MLMHead(BaseModule):
    """BERT's prediction head (dense, GELU, LayerNorm, vocabulary decoder with its own bias) on the text tokens
    of the fusion encoder; cross entropy on the masked positions only (labels ``-100`` elsewhere).

    Args:
        in_dims (int): Width of the text tokens.
        vocab_size (int): Vocabulary size of the tokenizer.
        layer_norm_eps (float): LayerNorm epsilon. Defaults to 1e-12 (BERT/RoBERTa).
        loss_weight (float): Weight of ``loss_mlm``. Defaults to 1.
    """

    def __init__(self, in_dims: int, vocab_size: int, layer_norm_eps: float = 1e-12, loss_weight: float = 1.0,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.dense = nn.Linear(in_dims, in_dims)
        self.norm = nn.LayerNorm(in_dims, eps=layer_norm_eps)
        self.decoder = nn.Linear(in_dims, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.vocab_size = vocab_size
        self.loss_weight = loss_weight

    def forward(self, text_tokens: Tensor) -> Tensor:
        """(bs, L, vocab_size) logits from (bs, L, in_dims) tokens."""
        return self.decoder(self.norm(F.gelu(self.dense(text_tokens)))) + self.bias

    def loss(self, text_tokens: Tensor, labels: Tensor) -> Dict[str, Tensor]:
        """``loss_mlm`` and ``acc_mlm`` (over the targets) from (bs, L, in_dims) tokens and (bs, L) labels."""
        targets = labels != -100
        logits = self(text_tokens[targets]) if targets.any() else self(text_tokens[:, :1]).flatten(0, 1)
        if not targets.any():  # nothing masked: a zero loss that keeps the graph
            return dict(loss_mlm=logits.sum() * 0.0, acc_mlm=logits.new_zeros(()))
        loss = F.cross_entropy(logits, labels[targets])
        acc = (logits.argmax(dim=-1) == labels[targets]).float().mean().detach()
        return dict(loss_mlm=self.loss_weight * loss, acc_mlm=acc)
