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

    The decoder can share its weight with the text encoder's word embeddings, as BERT, X-VLM and SOHO do: with
    ``tie_word_embeddings=True`` the model that owns the head calls :meth:`tie_weights` with the embeddings
    (e.g. :attr:`HFTextEncoder.word_embeddings <mmvlg.models.language_models.HFTextEncoder.word_embeddings>`);
    the decoder then holds no weight of its own (``decoder.weight`` is the embedding matrix; the bias stays the
    head's). FIBER's decoder is untied.

    Args:
        in_dims (int): Width of the text tokens (the embeddings' width when tied).
        vocab_size (int): Vocabulary size of the tokenizer.
        layer_norm_eps (float): LayerNorm epsilon. Defaults to 1e-12 (BERT/RoBERTa).
        loss_weight (float): Weight of ``loss_mlm``. Defaults to 1.
        tie_word_embeddings (bool): Whether the owning model should tie the decoder to the word embeddings
            (:meth:`tie_weights`). Defaults to False.
    """

    def __init__(self, in_dims: int, vocab_size: int, layer_norm_eps: float = 1e-12, loss_weight: float = 1.0,
                 tie_word_embeddings: bool = False, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.dense = nn.Linear(in_dims, in_dims)
        self.norm = nn.LayerNorm(in_dims, eps=layer_norm_eps)
        self.decoder = nn.Linear(in_dims, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.vocab_size = vocab_size
        self.loss_weight = loss_weight
        self.tie_word_embeddings = tie_word_embeddings

    def tie_weights(self, word_embeddings: nn.Embedding) -> None:
        """Make the decoder's weight the (vocab_size, in_dims) weight of ``word_embeddings`` (one shared
        parameter: a gradient of either reaches both).

        Raises:
            ValueError: The embedding matrix is not (vocab_size, in_dims).
        """
        weight = word_embeddings.weight
        if tuple(weight.shape) != tuple(self.decoder.weight.shape):
            raise ValueError(f'MLMHead.tie_weights: the word embeddings are {tuple(weight.shape)}, the decoder '
                             f'needs (vocab_size, in_dims) = {tuple(self.decoder.weight.shape)}')
        self.decoder.weight = weight

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
