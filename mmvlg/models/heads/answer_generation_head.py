"""Answer generation head: VQA as text generation over a list of candidate answers (X-VLM, ALBEF style)."""
import copy
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmvlg.registry import MODELS

from .mlm_head import MLMHead


def causal_attention_mask(embeds: Tensor, attention_mask: Tensor) -> Tensor:
    """The additive self-attention mask of a left-to-right decoder: position i attends to the real tokens
    ``j <= i``.

    The mask is additive (0 where attended, the dtype's minimum elsewhere), the form that both the eager and the
    SDPA attention of Hugging Face BERT layers take (transformers 4 and 5).

    Args:
        embeds (Tensor): (n, L, C) the layers' input (for the shape, dtype and device).
        attention_mask (Tensor): (n, L) 1 (or True) at real tokens.

    Returns:
        Tensor: (n, 1, L, L) additive mask.
    """
    n, length = embeds.shape[:2]
    causal = torch.ones(length, length, dtype=torch.bool, device=embeds.device).tril()
    allowed = causal[None] & attention_mask.bool()[:, None, :]
    mask = torch.zeros(n, 1, length, length, dtype=embeds.dtype, device=embeds.device)
    return mask.masked_fill(~allowed[:, None], torch.finfo(embeds.dtype).min)


@MODELS.register_module()
class AnswerGenerationHead(BaseModule):
    r"""A BERT-style answer decoder: causal self-attention over the answer tokens, cross-attention to the fused
    question tokens, and a language-model head (X-VLM's and ALBEF's VQA as generation).

    .. code:: text

        answer ids (n, L_a)  [CLS] w_1 .. w_m [SEP] [PAD]..    (the tokenizer's own start and end tokens)
          ─ decoder.embed ─ layers 0 .. num_layers-1: causal self-attention, cross-attention to the question
            states (n, L_q, C_q), FFN ─ lm_head ─ logits (n, L_a, V); position t predicts token t+1

    Training (:meth:`loss`): every question comes with its answers (indices into a batch of answer sequences)
    and one weight per answer (X-VLM: the fraction of the annotators who gave it); the loss is the weighted sum
    of each answer sequence's token cross-entropy (its tokens after the start token, the end token included),
    divided by the number of questions.

    Inference (:meth:`rank`) over a fixed list of candidate answers, in two stages: the decoder reads the start
    token alone and the ``k`` answers whose first token is the most probable are kept; they are then re-ranked by
    their full-sequence log-likelihood (the released code adds the first token's log-probability once more,
    ``add_first_token``) and the scores are a softmax over the ``k``.

    :meth:`init_from` copies a text encoder's layers (X-VLM: the cross encoder's, layers 6-11 of BERT-base) and
    its embeddings into the decoder, as the authors initialize their decoder.

    Args:
        decoder (dict): :class:`~mmvlg.models.language_models.HFTextEncoder` config of the decoder (usually the
            model's ``language_model`` config: the same tokenizer and width). ``cross_attention`` is set here
            (layers ``0 .. num_layers-1``, context width ``context_dims``); a pretrained ``name_or_path`` is read
            for its config and tokenizer only (``pretrained_weights=False``: the weights come from
            :meth:`init_from` or a checkpoint).
        num_layers (int): Decoder layers (X-VLM: 6, the cross encoder's). A ``model_config`` decoder is built with
            this many; a ``name_or_path`` one keeps its first ``num_layers``.
        context_dims (int, optional): Width of the question states. Defaults to the decoder's width.
        tie_word_embeddings (bool): Tie the LM head's output matrix to the decoder's word embeddings (BERT's
            ``BertLMHeadModel``). Defaults to True.
        add_first_token (bool): Add the first token's log-probability of stage 1 to the full-sequence
            log-likelihood of stage 2 (so it counts twice), as the released ``rank_answer``. Defaults to True.
        loss_weight (float): Weight of ``loss_vqa``. Defaults to 1.
    """

    def __init__(self, decoder: dict, num_layers: int = 6, context_dims: Optional[int] = None,
                 tie_word_embeddings: bool = True, add_first_token: bool = True, loss_weight: float = 1.0,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'AnswerGenerationHead: num_layers must be >= 1, got {num_layers}')
        cfg = copy.deepcopy(dict(decoder))
        cfg.setdefault('type', 'HFTextEncoder')
        if cfg.get('model_config') is not None:
            cfg['model_config'] = dict(cfg['model_config'], num_hidden_layers=num_layers)
        else:
            cfg['pretrained_weights'] = False
        cfg.pop('frozen', None)
        cfg['cross_attention'] = dict(start=0, end=num_layers, context_dims=context_dims)
        self.decoder = MODELS.build(cfg)
        dec = self.decoder
        if dec.num_layers < num_layers:
            raise ValueError(f'AnswerGenerationHead: the decoder config has {dec.num_layers} layers, fewer than '
                             f'num_layers={num_layers}')
        if dec.num_layers > num_layers:  # a pretrained config: keep the first num_layers
            dec.model.encoder.layer = dec.model.encoder.layer[:num_layers]
            dec.model.config.num_hidden_layers = num_layers
        self.num_layers = num_layers
        self.embed_dims = dec.embed_dims
        self.context_dims = dec.context_dims
        self.lm_head = MLMHead(self.embed_dims, len(dec.tokenizer), tie_word_embeddings=tie_word_embeddings,
                               layer_norm_eps=getattr(dec.model.config, 'layer_norm_eps', 1e-12))
        if tie_word_embeddings:
            self.lm_head.tie_weights(dec.word_embeddings)
        self.add_first_token = add_first_token
        self.loss_weight = loss_weight

    # ---------------------------------------------------------------------------------------- init
    @staticmethod
    def layer_key_map(source_keys: Sequence[str], start: int, num_layers: int, source_prefix: str = '',
                      target_prefix: str = '') -> Dict[str, str]:
        """The decoder keys (``target_prefix`` + this head's state-dict names) that :meth:`init_from` fills from
        a text encoder's state-dict keys (``source_prefix`` + :class:`HFTextEncoder` names).

        Embeddings map to embeddings, layer ``start + i`` (and its cross-attention block) to decoder layer
        ``i`` for ``i < num_layers``; the text encoder's other layers map to nothing.

        Returns:
            dict: target key -> source key.
        """
        out = {}
        for key in source_keys:
            if not key.startswith(source_prefix):
                continue
            name = key[len(source_prefix):]
            parts = name.split('.')
            if name.startswith('model.embeddings.'):
                if 'position_ids' in name or 'token_type_ids' in name:
                    continue  # buffers
                out[f'{target_prefix}decoder.{name}'] = key
            elif name.startswith('model.encoder.layer.') or name.startswith('cross_attns.'):
                at = 3 if parts[0] == 'model' else 1
                i = int(parts[at]) - start
                if 0 <= i < num_layers:
                    parts[at] = str(i)
                    out[f'{target_prefix}decoder.{".".join(parts)}'] = key
        return out

    def fill_state_dict(self, state_dict: Dict[str, Tensor], source_prefix: str, start: int,
                        target_prefix: str = '', mlm_prefix: Optional[str] = None) -> List[str]:
        """Add to ``state_dict`` the decoder (and LM head) entries :meth:`init_from` would copy, from a text
        encoder's entries in the same state dict (e.g. a pre-training checkpoint loaded into a VQA model).

        A module with an entry whose shape is not the decoder's (the cross-attention key/value projections when
        the question width is not the visual width: weight and bias) is left out whole, so it keeps its current
        (fresh) values, as the authors drop those keys.

        Args:
            state_dict (dict): The state dict, changed in place.
            source_prefix (str): Prefix of the text encoder's keys (``'language_model.'``).
            start (int): The text encoder's layer copied into decoder layer 0 (X-VLM: ``fusion_layer``).
            target_prefix (str): Prefix of this head's keys (``'answer_head.'``).
            mlm_prefix (str, optional): Prefix of an :class:`MLMHead`'s keys to copy into :attr:`lm_head`
                (``'mlm_head.'``); its output matrix only when untied.

        Returns:
            list[str]: The keys added.
        """
        own = self.state_dict()
        added = []
        mapping = self.layer_key_map(list(state_dict), start, self.num_layers, source_prefix, target_prefix)

        def fits(target: str) -> bool:
            name = target[len(target_prefix):]
            return name in own and tuple(own[name].shape) == tuple(state_dict[mapping[target]].shape)

        # a module (e.g. a key projection of another width) is copied whole or not at all
        misfit = {t.rsplit('.', 1)[0] for t in mapping if not fits(t)}
        for target, source in mapping.items():
            if target.rsplit('.', 1)[0] not in misfit:
                state_dict[target] = state_dict[source]
                added.append(target)
        if mlm_prefix is not None:
            for name in ('dense.weight', 'dense.bias', 'norm.weight', 'norm.bias', 'bias', 'decoder.weight'):
                if name == 'decoder.weight' and self.lm_head.tie_word_embeddings:
                    continue
                source = f'{mlm_prefix}{name}'
                own_key = f'lm_head.{name}'
                if source in state_dict and tuple(state_dict[source].shape) == tuple(own[own_key].shape):
                    state_dict[f'{target_prefix}{own_key}'] = state_dict[source]
                    added.append(f'{target_prefix}{own_key}')
        return added

    @torch.no_grad()
    def init_from(self, text_encoder, start: int, mlm_head: Optional[MLMHead] = None) -> List[str]:
        """Copy ``text_encoder``'s embeddings and its layers ``start .. start + num_layers - 1`` (with their
        cross-attention blocks) into the decoder, as X-VLM initializes its answer decoder from the cross encoder;
        with ``mlm_head``, also its prediction transform and bias into :attr:`lm_head`.

        The cross-attention key/value projections are copied only when their shapes agree (the question width
        equals the visual width); otherwise they keep their fresh initialization (X-VLM trains them at 2x).

        Args:
            text_encoder (HFTextEncoder): The encoder to copy from (same width and vocabulary).
            start (int): Its first layer to copy.
            mlm_head (MLMHead, optional): The pre-training MLM head.

        Returns:
            list[str]: The head's state-dict keys that were copied.

        Raises:
            ValueError: ``text_encoder`` has fewer than ``start + num_layers`` layers, or a cross-attention
                block is missing on one of them.
        """
        if start + self.num_layers > text_encoder.num_layers:
            raise ValueError(f'AnswerGenerationHead.init_from: layers {start} .. {start + self.num_layers - 1} '
                             f'asked of a text encoder of {text_encoder.num_layers} layers')
        missing = [i for i in range(start, start + self.num_layers) if str(i) not in text_encoder.cross_attns]
        if missing:
            raise ValueError(f'AnswerGenerationHead.init_from: layers {missing} of the text encoder have no '
                             'cross-attention block')
        state = {f'language_model.{k}': v for k, v in text_encoder.state_dict().items()}
        if mlm_head is not None:
            state.update({f'mlm_head.{k}': v for k, v in mlm_head.state_dict().items()})
        added = self.fill_state_dict(state, 'language_model.', start,
                                     mlm_prefix='mlm_head.' if mlm_head is not None else None)
        own = dict(self.state_dict(keep_vars=True))
        for key in added:
            own[key].data.copy_(state[key])
        return added

    # ------------------------------------------------------------------------------------- forward
    def forward(self, answer_ids: Tensor, answer_mask: Tensor, question_states: Tensor,
                question_mask: Optional[Tensor] = None) -> Tensor:
        """Next-token logits of answer sequences given their questions.

        Args:
            answer_ids (Tensor): (n, L_a) token ids, starting with the start token.
            answer_mask (Tensor): (n, L_a) 1 at real tokens.
            question_states (Tensor): (n, L_q, C_q) the fused question tokens (row i: answer i's question).
            question_mask (Tensor, optional): (n, L_q) 1 at real question tokens (None: all real).

        Returns:
            Tensor: (n, L_a, V); position t scores token t + 1.
        """
        dec = self.decoder
        hidden = dec.embed(answer_ids)
        layer_mask = causal_attention_mask(hidden, answer_mask)
        ctx_mask = dec.cross_attention_mask(hidden, question_states, question_mask)
        for i in range(self.num_layers):
            hidden = dec.forward_layer(i, hidden, layer_mask, question_states, ctx_mask)
        return self.lm_head(hidden)

    def sequence_nll(self, answer_ids: Tensor, answer_mask: Tensor, question_states: Tensor,
                     question_mask: Optional[Tensor] = None) -> Tensor:
        """(n,) negative log-likelihood of each answer sequence: the sum over its real tokens after the start
        token (the end token included) of ``-log p(token | previous tokens, question)``."""
        logits = self(answer_ids, answer_mask, question_states, question_mask)[:, :-1].float()
        targets = answer_ids[:, 1:].masked_fill(~answer_mask[:, 1:].bool(), -100)
        nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction='none')
        return nll.sum(dim=1)

    def loss(self, question_states: Tensor, question_mask: Tensor, answer_ids: Tensor, answer_mask: Tensor,
             answer_question: Tensor, answer_weights: Tensor) -> Dict[str, Tensor]:
        """The weighted answer loss of a batch of questions.

        Args:
            question_states (Tensor): (B, L_q, C_q) fused question tokens.
            question_mask (Tensor): (B, L_q) 1 at real question tokens.
            answer_ids (Tensor): (n, L_a) the answers of all questions, one row per (question, answer).
            answer_mask (Tensor): (n, L_a) 1 at real tokens.
            answer_question (Tensor): (n,) long, the question (row of ``question_states``) of each answer.
            answer_weights (Tensor): (n,) weight of each answer.

        Returns:
            dict: ``loss_vqa`` = ``loss_weight`` x sum_i w_i NLL_i / B.
        """
        if not (len(answer_ids) == len(answer_mask) == len(answer_question) == len(answer_weights)):
            raise ValueError(f'AnswerGenerationHead.loss: {len(answer_ids)} answer rows, {len(answer_mask)} masks, '
                             f'{len(answer_question)} question indices and {len(answer_weights)} weights')
        idx = answer_question.to(question_states.device).long()
        nll = self.sequence_nll(answer_ids, answer_mask, question_states[idx], question_mask[idx])
        loss = (answer_weights.to(nll) * nll).sum() / max(len(question_states), 1)
        return dict(loss_vqa=self.loss_weight * loss)

    @torch.no_grad()
    def rank(self, question_states: Tensor, question_mask: Tensor, answer_ids: Tensor, answer_mask: Tensor,
             k: int) -> Dict[str, Tensor]:
        """Rank a list of candidate answers for each question (the two stages of the class docstring).

        Args:
            question_states (Tensor): (B, L_q, C_q) fused question tokens.
            question_mask (Tensor): (B, L_q) 1 at real question tokens.
            answer_ids (Tensor): (A, L_a) the tokenized candidate answers, all starting with the same start
                token; (A, ) answers of one token are ``[start, w_1, end]``.
            answer_mask (Tensor): (A, L_a) 1 at real tokens.
            k (int): Candidates kept by the first token (at most A).

        Returns:
            dict: ``ids`` (B, k) answer indices, best first, and ``scores`` (B, k) their softmax over the k
            re-ranking scores; ``first_ids`` (B, k) the stage-1 candidates by first-token probability, best
            first, and ``first_probs`` (B, k) those probabilities.
        """
        num_q, num_a = question_states.shape[0], answer_ids.shape[0]
        if answer_ids.shape[1] < 2:
            raise ValueError('AnswerGenerationHead.rank: answers need a start token and at least one more token')
        k = max(1, min(int(k), num_a))
        start = answer_ids[:1, :1].expand(num_q, 1)
        first_logits = self(start, torch.ones_like(start), question_states, question_mask)[:, 0].float()
        first_probs = first_logits.softmax(dim=-1).index_select(1, answer_ids[:, 1])  # (B, A)
        top_probs, top_ids = first_probs.topk(k, dim=1)
        flat = top_ids.reshape(-1)
        rows = torch.arange(num_q, device=question_states.device).repeat_interleave(k)
        nll = self.sequence_nll(answer_ids[flat], answer_mask[flat], question_states[rows], question_mask[rows])
        score = -nll.view(num_q, k)
        if self.add_first_token:
            score = score + top_probs.clamp_min(torch.finfo(top_probs.dtype).tiny).log()
        probs, order = score.softmax(dim=-1).sort(dim=1, descending=True)
        return dict(ids=top_ids.gather(1, order), scores=probs, first_ids=top_ids, first_probs=top_probs)


__all__ = ['AnswerGenerationHead', 'causal_attention_mask']
