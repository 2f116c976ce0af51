"""Masked language modelling (MLM) head over the fused text stream, and its masking rules."""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS

from ..utils.mlm_masking import mask_tokens

MASKING_RULES = ('bernoulli', 'count')


def mask_tokens_by_count(input_ids: Tensor, attention_mask: Tensor, mask_token_id: int, special_ids: Sequence[int],
                         vocab_size: int, mask_prob: float = 0.25, max_masks: int = 8, replace_prob: float = 0.8,
                         random_prob: float = 0.1, span_prob: float = 0.2, max_span: int = 3,
                         continuation: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                         ignore_index: int = -100) -> Tuple[Tensor, Tensor]:
    """X-VLM's released masking rule (its pre-training data pipeline): a fixed number of targets per text,
    chosen in random order as single tokens or, with probability ``span_prob``, spans of 2 .. ``max_span``
    tokens, widened to whole words, then replaced 80/10/10 as BERT does.

    For a text of n tokens (its ``[CLS]`` and its words; the authors' sequences have no ``[SEP]``), exactly
    ``min(max_masks, max(1, round(n * mask_prob)))`` targets are chosen (fewer only when the text has fewer
    maskable tokens): candidates are visited in random order; each starts a span (one token, or 2 .. ``max_span``
    with probability ``span_prob``) that is widened to the start and the end of its words (a word continues
    through the tokens where ``continuation`` is True, WordPiece's ``##`` pieces) and cut at the first token that
    cannot be masked (special or padding); when the spans give more targets than the count, a random subset of
    that size is kept.

    Args:
        input_ids (Tensor): (bs, L) token ids.
        attention_mask (Tensor): (bs, L), 1 at real tokens.
        mask_token_id (int): The mask token.
        special_ids (Sequence[int]): Ids never chosen nor drawn as random replacements.
        vocab_size (int): Vocabulary of the random replacements.
        mask_prob (float): Targets per token (0.25 in X-VLM). Defaults to 0.25.
        max_masks (int): Most targets per text (8 for X-VLM's 4M pre-training). Defaults to 8.
        replace_prob (float): Of the targets, the fraction replaced by the mask token. Defaults to 0.8.
        random_prob (float): Of the targets, the fraction replaced by a random token. Defaults to 0.1.
        span_prob (float): Probability that a candidate starts a multi-token span. Defaults to 0.2.
        max_span (int): Longest span (spans need ``max_span >= 2``). Defaults to 3.
        continuation (Tensor, optional): (vocab_size,) bool, True at the ids that continue a word (None: every
            token is a word).
        generator (torch.Generator, optional): A CPU random generator.
        ignore_index (int): Label of the non-target positions. Defaults to -100.

    Returns:
        tuple: the masked ids (bs, L) and the labels (bs, L): the original id at targets, ``ignore_index``
        elsewhere.
    """
    if not 0 < mask_prob <= 1 or max_masks < 1 or replace_prob + random_prob > 1:
        raise ValueError(f'mask_tokens_by_count: need 0 < mask_prob <= 1, max_masks >= 1 and replace_prob + '
                         f'random_prob <= 1, got {mask_prob}, {max_masks}, {replace_prob}, {random_prob}')
    device = input_ids.device
    ids = input_ids.cpu()
    special = torch.zeros(max(vocab_size, int(ids.max()) + 1 if ids.numel() else vocab_size), dtype=torch.bool)
    special[torch.as_tensor(list(special_ids), dtype=torch.long)] = True
    maskable = attention_mask.cpu().bool() & ~special[ids]
    cont = torch.zeros(len(special), dtype=torch.bool)
    if continuation is not None:
        cont[:len(continuation)] = continuation.cpu().bool()[:len(cont)]
    targets = torch.zeros_like(maskable)
    length = ids.shape[1]

    def rand() -> float:
        return float(torch.rand((), generator=generator))

    for b in range(ids.shape[0]):
        cand = maskable[b].nonzero()[:, 0].tolist()
        if not cand:
            continue
        n_pred = min(max_masks, max(1, int(round((len(cand) + 1) * mask_prob))))
        is_cont = cont[ids[b]].tolist()
        chosen = set()
        for pos in (cand[i] for i in torch.randperm(len(cand), generator=generator).tolist()):
            if len(chosen) >= n_pred:
                break
            if pos in chosen:
                continue
            span = 1
            if span_prob > 0 and max_span >= 2 and rand() < span_prob:
                span = int(torch.randint(2, max_span + 1, (), generator=generator))
            start, end = pos, min(pos + span, length)
            while start > 0 and is_cont[start]:
                start -= 1
            while end < length and is_cont[end]:
                end += 1
            for p in range(start, end):
                if not maskable[b, p]:
                    break
                chosen.add(p)
        chosen = sorted(chosen)
        if len(chosen) > n_pred:
            keep = torch.randperm(len(chosen), generator=generator)[:n_pred].tolist()
            chosen = [chosen[i] for i in keep]
        targets[b, chosen] = True
    labels = ids.masked_fill(~targets, ignore_index)
    u = torch.rand(ids.shape, generator=generator)
    to_mask = targets & (u < replace_prob)
    to_random = targets & (u >= replace_prob) & (u < replace_prob + random_prob)
    allowed = (~special[:vocab_size]).nonzero()[:, 0]
    random_ids = allowed[torch.randint(len(allowed), ids.shape, generator=generator)]
    masked = torch.where(to_random, random_ids, ids.masked_fill(to_mask, mask_token_id))
    return masked.to(device), labels.to(device)


@MODELS.register_module()
class MLMHead(BaseModule):
    """BERT's prediction head (dense, GELU, LayerNorm, vocabulary decoder with its own bias) on the text tokens
    of the fusion encoder; cross entropy on the masked positions only (labels ``-100`` elsewhere).

    The decoder can share its weight with the text encoder's word embeddings, as BERT, X-VLM and SOHO do: with
    ``tie_word_embeddings=True`` the model that owns the head calls :meth:`tie_weights` with the embeddings
    (e.g. :attr:`HFTextEncoder.word_embeddings <mmvlg.models.language_models.HFTextEncoder.word_embeddings>`);
    the decoder then holds no weight of its own (``decoder.weight`` is the embedding matrix; the bias stays the
    head's). FIBER's decoder is untied.

    The head also owns its targets: :meth:`mask` masks a tokenized batch by the rule of ``masking``:
    ``dict(rule='bernoulli', mask_prob=0.15, replace_prob=0.8, random_prob=0.1)`` (the default: each token a
    target with probability ``mask_prob``, BERT's 80/10/10, :func:`~mmvlg.models.utils.mask_tokens`; the X-VLM
    paper's rule with ``mask_prob=0.25``) or ``dict(rule='count', mask_prob=0.25, max_masks=8, span_prob=0.2,
    max_span=3, whole_word=True, ...)`` (X-VLM's released code, :func:`mask_tokens_by_count`).

    Args:
        in_dims (int): Width of the text tokens (the embeddings' width when tied).
        vocab_size (int): Vocabulary size of the tokenizer.
        layer_norm_eps (float): LayerNorm epsilon. Defaults to 1e-12 (BERT/RoBERTa).
        loss_weight (float): Weight of ``loss_mlm``. Defaults to 1.
        tie_word_embeddings (bool): Whether the owning model should tie the decoder to the word embeddings
            (:meth:`tie_weights`). Defaults to False.
        masking (dict, optional): The masking rule of :meth:`mask` (see above). Defaults to BERT's
            ``dict(rule='bernoulli', mask_prob=0.15, replace_prob=0.8, random_prob=0.1)``.
        transform (bool): Whether the decoder reads the transformed tokens ``LN(GELU(dense(x)))`` (BERT's head);
            False: the decoder reads the tokens themselves and the head has no ``dense``/``norm`` (SOHO's released
            ``mask_l_fc``). Defaults to True.
        bias (bool): Whether the logits get the head's own output ``bias``. Defaults to True (False: SOHO's
            released bias-free decoder).
    """

    def __init__(self, in_dims: int, vocab_size: int, layer_norm_eps: float = 1e-12, loss_weight: float = 1.0,
                 tie_word_embeddings: bool = False, masking: Optional[dict] = None, transform: bool = True,
                 bias: bool = True, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        masking = dict(masking or {})
        rule = masking.pop('rule', 'bernoulli')
        if rule not in MASKING_RULES:
            raise ValueError(f'MLMHead: masking.rule must be one of {MASKING_RULES}, got {rule!r}')
        self.masking_rule, self.masking = rule, masking
        self.transform, self.with_bias = bool(transform), bool(bias)
        self.dense = nn.Linear(in_dims, in_dims) if self.transform else None
        self.norm = nn.LayerNorm(in_dims, eps=layer_norm_eps) if self.transform else None
        self.decoder = nn.Linear(in_dims, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size)) if self.with_bias else None
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

    #: Where a Hugging Face masked-LM checkpoint keeps its prediction head: (dense, LayerNorm, output bias).
    HF_PREDICTION_HEADS = (('cls.predictions.transform.dense', 'cls.predictions.transform.LayerNorm',
                            'cls.predictions.bias'),  # BERT
                           ('lm_head.dense', 'lm_head.layer_norm', 'lm_head.bias'))  # RoBERTa

    @torch.no_grad()
    def load_hf_prediction_head(self, name_or_path: str) -> None:
        """Copy the prediction head of a pretrained Hugging Face masked LM (BERT's ``cls.predictions``, RoBERTa's
        ``lm_head``: transform dense, LayerNorm and output bias; the decoder is the tied word embeddings) into
        this head, as X-VLM's ``BertForMaskedLM`` starts from BERT's.

        Args:
            name_or_path (str): The checkpoint folder or hub name (read as
                :class:`~mmvlg.models.language_models.HFTextEncoder` reads it).

        Raises:
            KeyError: The checkpoint has no such head, or its shapes are not this head's.
        """
        if not (self.transform and self.with_bias):
            raise ValueError('MLMHead.load_hf_prediction_head: the head is built without the transform or the bias '
                             '(transform=False or bias=False) that a Hugging Face prediction head holds')
        import transformers

        from ..language_models.hf_text_encoder import pretrained_source
        path, kwargs = pretrained_source(name_or_path)
        state = transformers.AutoModelForMaskedLM.from_pretrained(path, **kwargs).state_dict()
        for dense, norm, bias in self.HF_PREDICTION_HEADS:
            if f'{dense}.weight' in state:
                break
        else:
            raise KeyError(f'MLMHead.load_hf_prediction_head: {name_or_path!r} has no masked-LM prediction head '
                           f'(looked for {[d for d, _, _ in self.HF_PREDICTION_HEADS]})')
        pairs = [(self.dense.weight, f'{dense}.weight'), (self.dense.bias, f'{dense}.bias'),
                 (self.norm.weight, f'{norm}.weight'), (self.norm.bias, f'{norm}.bias'), (self.bias, bias)]
        for param, key in pairs:
            if tuple(state[key].shape) != tuple(param.shape):
                raise KeyError(f'MLMHead.load_hf_prediction_head: {key} of {name_or_path!r} is '
                               f'{tuple(state[key].shape)}, the head needs {tuple(param.shape)}')
            param.copy_(state[key])

    def mask(self, input_ids: Tensor, attention_mask: Tensor, tokenizer,
             generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        """Mask a tokenized batch by the head's rule (``masking``).

        Args:
            input_ids (Tensor): (bs, L) token ids.
            attention_mask (Tensor): (bs, L), 1 at real tokens.
            tokenizer: The Hugging Face tokenizer of the ids (mask token, special tokens, size; for the
                ``'count'`` rule's ``whole_word``, its ``##`` word pieces).
            generator (torch.Generator, optional): Random generator.

        Returns:
            tuple: the masked ids (bs, L) and the labels (bs, L), -100 except at the targets.
        """
        cfg = dict(self.masking)
        common = (input_ids, attention_mask, tokenizer.mask_token_id, tokenizer.all_special_ids, len(tokenizer))
        if self.masking_rule == 'bernoulli':
            return mask_tokens(*common, generator=generator, **cfg)
        continuation = None
        if cfg.pop('whole_word', True):
            continuation = self._continuation(tokenizer)
        return mask_tokens_by_count(*common, continuation=continuation, generator=generator, **cfg)

    def _continuation(self, tokenizer) -> Tensor:
        """(vocab_size,) bool, True at WordPiece's ``##`` tokens (cached per tokenizer size)."""
        cached = getattr(self, '_continuation_cache', None)
        if cached is None or len(cached) != len(tokenizer):
            tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
            cached = torch.tensor([isinstance(t, str) and t.startswith('##') for t in tokens], dtype=torch.bool)
            self._continuation_cache = cached
        return cached

    def forward(self, text_tokens: Tensor) -> Tensor:
        """(bs, L, vocab_size) logits from (bs, L, in_dims) tokens."""
        if self.transform:
            text_tokens = self.norm(F.gelu(self.dense(text_tokens)))
        logits = self.decoder(text_tokens)
        return logits + self.bias if self.bias is not None else logits

    def loss(self, text_tokens: Tensor, labels: Tensor) -> Dict[str, Tensor]:
        """``loss_mlm`` and ``acc_mlm`` (over the targets) from (bs, L, in_dims) tokens and (bs, L) labels."""
        targets = labels != -100
        logits = self(text_tokens[targets]) if targets.any() else self(text_tokens[:, :1]).flatten(0, 1)
        if not targets.any():  # nothing masked: a zero loss that keeps the graph
            return dict(loss_mlm=logits.sum() * 0.0, acc_mlm=logits.new_zeros(()))
        loss = F.cross_entropy(logits, labels[targets])
        acc = (logits.argmax(dim=-1) == labels[targets]).float().mean().detach()
        return dict(loss_mlm=self.loss_weight * loss, acc_mlm=acc)
