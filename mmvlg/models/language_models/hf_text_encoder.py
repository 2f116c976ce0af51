"""Hugging Face text encoders (BERT, RoBERTa, ...) for grounding models, on transformers 5.x."""
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS

SPECIAL_TOKENS = ('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]')


def build_word_tokenizer(vocab: Sequence[str], lower_case: bool = True):
    """A word-level fast tokenizer (words and punctuation, ``[CLS] ... [SEP]``) over ``vocab``.

    It is built in-process with the ``tokenizers`` package, so nothing is downloaded, and it returns
    character offsets like any fast Hugging Face tokenizer.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    words = [w for w in dict.fromkeys(vocab) if w not in SPECIAL_TOKENS]
    table = {t: i for i, t in enumerate(list(SPECIAL_TOKENS) + words)}
    tok = Tokenizer(WordLevel(table, unk_token='[UNK]'))
    if lower_case:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(
        single='[CLS] $A [SEP]', pair='[CLS] $A [SEP] $B [SEP]',
        special_tokens=[('[CLS]', table['[CLS]']), ('[SEP]', table['[SEP]'])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token='[PAD]', unk_token='[UNK]',
                                   cls_token='[CLS]', sep_token='[SEP]', mask_token='[MASK]')


def read_vocab_file(vocab_file: str) -> List[str]:
    if not osp.isfile(vocab_file):
        raise FileNotFoundError(f'vocabulary file {vocab_file!r} does not exist')
    with open(vocab_file) as f:
        words = [ln.strip() for ln in f if ln.strip()]
    if not words:
        raise ValueError(f'vocabulary file {vocab_file!r} is empty')
    return words


def resolve_vocab(vocab=None, vocab_file: Optional[str] = None) -> List[str]:
    """A vocabulary given as a list of words, the name of a built-in one (``'synthref'``) or a file."""
    if vocab_file is not None:
        return read_vocab_file(vocab_file)
    if vocab == 'synthref':
        from mmvlg.datasets.synthref import vocabulary
        return vocabulary()
    if isinstance(vocab, (list, tuple)) and vocab:
        return list(vocab)
    raise ValueError(f'word tokenizer: give vocab (a list of words or "synthref") or vocab_file, got {vocab!r}')


def _is_local(name: str) -> bool:
    return osp.isdir(osp.expanduser(name))


@MODELS.register_module()
class HFTextEncoder(BaseModule):
    """A Hugging Face text encoder and its tokenizer.

    Two ways to build it:

    * ``name_or_path``: a local folder or a hub name of a pretrained model (``'roberta-base'``,
      ``'bert-base-uncased'``, ...): the pretrained tokenizer and weights are loaded (offline when a
      folder is given; hub names need the files in the local cache when there is no network).
    * ``model_config`` + ``tokenizer``: a model built from a config dict (e.g. a 2-layer BERT of width
      128) with random weights, and a word-level tokenizer over a vocabulary (``vocab_file``, e.g. the
      one SynthRef writes), for runs that must not download anything.

    Args:
        name_or_path (str, optional): Pretrained model folder or hub name.
        model_config (dict, optional): ``model_type`` (``'bert'``/``'roberta'``) and the fields of the
            corresponding ``transformers`` config.
        tokenizer (dict, optional): ``dict(type='word', vocab_file=... | vocab=[...] | vocab='synthref',
            lower_case=True)``.
        max_length (int): Longest tokenized text; longer texts are truncated. Defaults to 256.
        frozen (bool): Freeze the encoder (no gradients). Defaults to False.
        use_pooler (bool): Keep the model's pooler (for sentence-level heads). Defaults to False.
        pretrained_weights (bool): With ``name_or_path``, load the folder's weights (default). If False, only
            its tokenizer and ``config.json`` are read and the model gets random weights, e.g. when every
            weight comes from a converted checkpoint (``tools/model_converters/mdetr_to_mmvlg.py``); then the
            folder needs no weight file. Defaults to True.
    """

    def __init__(self, name_or_path: Optional[str] = None, model_config: Optional[dict] = None,
                 tokenizer: Optional[dict] = None, max_length: int = 256, frozen: bool = False,
                 use_pooler: bool = False, pretrained_weights: bool = True, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if (name_or_path is None) == (model_config is None):
            raise ValueError('HFTextEncoder: give exactly one of name_or_path (pretrained) and model_config')
        import transformers
        self.name_or_path = name_or_path
        self.max_length = max_length
        self.use_pooler = use_pooler
        self.pretrained_weights = pretrained_weights
        # The weights built here (pretrained, or the model's own random initialization) count as initialized:
        # the first ``init_weights`` keeps them; a later one after ``_is_init`` was reset re-initializes.
        self._built_weights = True
        if name_or_path is not None:
            path, kwargs = self._pretrained_source()
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, use_fast=True, **kwargs)
            if pretrained_weights:
                self.model = transformers.AutoModel.from_pretrained(path, add_pooling_layer=use_pooler, **kwargs)
            else:
                config = transformers.AutoConfig.from_pretrained(path, **kwargs)
                self.model = transformers.AutoModel.from_config(config, add_pooling_layer=use_pooler)
        else:
            cfg = dict(model_config)
            model_type = cfg.pop('model_type', 'bert')
            if tokenizer is None:
                raise ValueError('HFTextEncoder: model_config needs a tokenizer config')
            tok_cfg = dict(tokenizer)
            if tok_cfg.pop('type', 'word') != 'word':
                raise ValueError(f'HFTextEncoder: unknown tokenizer type in {tokenizer}')
            vocab = resolve_vocab(tok_cfg.pop('vocab', None), tok_cfg.pop('vocab_file', None))
            self.tokenizer = build_word_tokenizer(vocab, **tok_cfg)
            cfg.setdefault('vocab_size', len(self.tokenizer))
            cfg.setdefault('max_position_embeddings', max(max_length, 64))
            cfg.setdefault('pad_token_id', self.tokenizer.pad_token_id)
            config = transformers.AutoConfig.for_model(model_type, **cfg)
            self.model = transformers.AutoModel.from_config(config, add_pooling_layer=use_pooler)
        self.embed_dims = self.model.config.hidden_size
        self.frozen = frozen
        if frozen:
            self.model.requires_grad_(False)

    def _pretrained_source(self) -> Tuple[str, dict]:
        """The path and the ``from_pretrained`` keyword arguments of ``name_or_path``."""
        local = _is_local(self.name_or_path)
        kwargs = dict(local_files_only=True) if local or os.environ.get('HF_HUB_OFFLINE') else {}
        return osp.expanduser(self.name_or_path), kwargs

    def init_weights(self) -> None:
        """Initialize the weights.

        The first call keeps the weights built by the constructor (the pretrained ones, or the random draw of
        ``model_config``) and applies ``init_cfg`` if any. A later call, after ``_is_init`` was reset (e.g.
        by :class:`~mmvlg.engine.hooks.SiRiHook` re-initializing the language backbone), restores the
        initialization: the pretrained weights are loaded again from ``name_or_path``, and a
        ``model_config`` model draws new random weights with its own (Hugging Face) initialization.
        """
        if not self._is_init and not self._built_weights:
            self._reinitialize()
        self._built_weights = False
        super().init_weights()

    @torch.no_grad()
    def _reinitialize(self) -> None:
        import transformers
        if self.name_or_path is not None and self.pretrained_weights:
            path, kwargs = self._pretrained_source()
            pretrained = transformers.AutoModel.from_pretrained(path, add_pooling_layer=self.use_pooler, **kwargs)
            self.model.load_state_dict(pretrained.state_dict(), strict=True)
            del pretrained
        else:
            # Hugging Face skips modules and tensors flagged as initialized (e.g. loaded): clear the flags.
            for obj in [*self.model.modules(), *self.model.parameters(), *self.model.buffers()]:
                if getattr(obj, '_is_hf_initialized', False):
                    obj._is_hf_initialized = False
            self.model.init_weights()

    def tokenize(self, texts: List[str], device=None) -> Dict[str, Tensor]:
        """Tokenize a batch, padded to the longest text.

        Returns:
            dict: ``input_ids`` (bs, L), ``attention_mask`` (bs, L) and ``offsets`` (bs, L, 2), the
            [start, end) characters of each token ((0, 0) for special and padding tokens).
        """
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f'HFTextEncoder: text {i} of the batch is empty: {t!r}')
        enc = self.tokenizer(list(texts), padding='longest', truncation=True, max_length=self.max_length,
                             return_offsets_mapping=True, return_tensors='pt')
        cut = sum(bool(e.overflowing) for e in (getattr(enc, 'encodings', None) or []))
        if cut and not getattr(self, '_warned_truncation', False):  # once: the data sets' text_encoder check counts
            self._warned_truncation = True
            warnings.warn(f'HFTextEncoder: {cut} of {len(texts)} texts of a batch are longer than max_length='
                          f'{self.max_length} tokens and are truncated (words past the cut are not seen); mmvlg\'s '
                          'data sets count and check them at start-up given this config as text_encoder')
        out = dict(input_ids=enc['input_ids'], attention_mask=enc['attention_mask'],
                   offsets=enc['offset_mapping'])
        if device is not None:
            out = {k: v.to(device) for k, v in out.items()}
        return out

    def forward(self, texts: List[str], device=None) -> Dict[str, Tensor]:
        """Encode a batch of texts.

        Returns:
            dict: ``embeds`` (bs, L, C) last hidden states; ``mask`` (bs, L) bool, True at real tokens;
            ``offsets`` (bs, L, 2); ``input_ids`` (bs, L); ``pooled`` (bs, C), the first token's state
            (or the pooler output when ``use_pooler``).
        """
        tok = self.tokenize(texts, device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.model(input_ids=tok['input_ids'], attention_mask=tok['attention_mask'])
        hidden = out.last_hidden_state
        pooled = getattr(out, 'pooler_output', None)
        return dict(embeds=hidden, mask=tok['attention_mask'].bool(), offsets=tok['offsets'],
                    input_ids=tok['input_ids'], pooled=pooled if pooled is not None else hidden[:, 0])


class FeatureResizer(nn.Module):
    """Linear projection + LayerNorm + dropout from the text encoder's width to the model width
    (MDETR's text resizer)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, out_channels)
        self.layer_norm = nn.LayerNorm(out_channels, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.layer_norm(self.fc(x)))
