"""Hugging Face text encoders (BERT, RoBERTa, ...) for grounding models, on transformers 5.x."""
import copy
import os
import os.path as osp
import re
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS

SPECIAL_TOKENS = ('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]')


def punctuation_pattern(vocab: Sequence[str]) -> str:
    """The regular expression (Oniguruma, as ``tokenizers`` runs it) of the punctuation and symbol characters
    that the word tokenizer of ``vocab`` strips: every Unicode punctuation or symbol character that is not a
    one-character token of the vocabulary (SynthRef VQA keeps its ``'?'``)."""
    kept = sorted({w for w in vocab if len(w) == 1 and not w.isalnum() and not w.isspace()})
    if not kept:
        return r'[\p{P}\p{S}]'
    return '(?![' + ''.join('\\' + c if c in '\\]^-[' else c for c in kept) + r'])[\p{P}\p{S}]'


def build_word_tokenizer(vocab: Sequence[str], lower_case: bool = True, strip_punctuation: bool = True):
    """A word-level fast tokenizer (words and punctuation, ``[CLS] ... [SEP]``) over ``vocab``.

    It is built in-process with the ``tokenizers`` package, so nothing is downloaded, and it returns
    character offsets like any fast Hugging Face tokenizer. Its normalizer (lower case, then, with
    ``strip_punctuation``, every punctuation or symbol character that is not a token of the vocabulary replaced
    by a space, see :func:`punctuation_pattern`) runs on every text it reads, training data and inference
    alike: "the small red circle." reads as "the small red circle", while a vocabulary that has ``'?'`` keeps
    it. Offsets still point into the original text.
    """
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    words = [w for w in dict.fromkeys(vocab) if w not in SPECIAL_TOKENS]
    table = {t: i for i, t in enumerate(list(SPECIAL_TOKENS) + words)}
    tok = Tokenizer(WordLevel(table, unk_token='[UNK]'))
    steps = [normalizers.Lowercase()] if lower_case else []
    if strip_punctuation:
        steps.append(normalizers.Replace(Regex(punctuation_pattern(words)), ' '))
    if steps:
        tok.normalizer = normalizers.Sequence(steps)
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


VOCAB_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'vocabs')


def builtin_vocabularies() -> List[str]:
    """The names of the vocabularies shipped with mmvlg (``mmvlg/models/language_models/vocabs/<name>.txt``)."""
    if not osp.isdir(VOCAB_DIR):
        return []
    return sorted(osp.splitext(f)[0] for f in os.listdir(VOCAB_DIR) if f.endswith('.txt'))


def resolve_vocab(vocab=None, vocab_file: Optional[str] = None) -> List[str]:
    """A vocabulary given as a list of words, the name of a vocabulary shipped with mmvlg (``'synthref'``: the
    words of SynthRef's referring expressions, see :func:`builtin_vocabularies`) or a file (one word a line)."""
    if vocab_file is not None:
        return read_vocab_file(vocab_file)
    if isinstance(vocab, str):
        if vocab not in builtin_vocabularies():
            raise ValueError(f'word tokenizer: unknown built-in vocabulary {vocab!r} (built-in: '
                             f'{builtin_vocabularies()}); give a list of words or vocab_file')
        return read_vocab_file(osp.join(VOCAB_DIR, f'{vocab}.txt'))
    if isinstance(vocab, (list, tuple)) and vocab:
        return list(vocab)
    raise ValueError(f'word tokenizer: give vocab (a list of words or a built-in name such as "synthref") or '
                     f'vocab_file, got {vocab!r}')


# ------------------------------------------------------------------------- attention masks (transformers 4/5)
def self_attention_mask(model: nn.Module, embeds: Tensor, attention_mask: Tensor):
    """The mask a Hugging Face BERT-like encoder gives its layers' self-attention, from a (bs, L) 0/1 mask.

    transformers 5 builds it with ``masking_utils.create_bidirectional_mask`` (its form depends on the attention
    implementation: None when nothing is masked, a bool or additive (bs, 1, L, L) tensor otherwise); 4.x with
    ``get_extended_attention_mask`` (additive, (bs, 1, 1, L)). This is the one place that knows the difference.

    Args:
        model (nn.Module): The Hugging Face model (``BertModel``, ``RobertaModel``, ...).
        embeds (Tensor): (bs, L, C) the layers' input.
        attention_mask (Tensor): (bs, L) 1 (or True) at real tokens.
    """
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # transformers 4.x
        return model.get_extended_attention_mask(attention_mask.long(), attention_mask.shape)
    return create_bidirectional_mask(config=model.config, inputs_embeds=embeds, attention_mask=attention_mask.long())


def cross_attention_mask(model: nn.Module, embeds: Tensor, context: Tensor, context_mask: Optional[Tensor]):
    """The mask of a cross-attention from (bs, L, C) queries ``embeds`` to (bs, M, C_ctx) ``context`` tokens, from
    a (bs, M) 0/1 ``context_mask`` (1 at real context tokens; None: every token is real), in the form the
    model's attention implementation takes (transformers 4 and 5, as :func:`self_attention_mask`)."""
    if context_mask is None:
        return None
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # transformers 4.x
        return model.invert_attention_mask(context_mask.long())
    return create_bidirectional_mask(config=model.config, inputs_embeds=embeds, attention_mask=context_mask.long(),
                                     encoder_hidden_states=context)


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _is_local(name: str) -> bool:
    return osp.isdir(osp.expanduser(name))


NAME_OR_PATH_KEY = 'model.language_model.name_or_path'  # FIBER: model.backbone.language_model.name_or_path


def _set_key_hint(folder: str) -> str:
    return (f'--cfg-options {NAME_OR_PATH_KEY}={folder} (FIBER configs: model.backbone.language_model.name_or_path'
            f'={folder}; the tools/model_converters/*_to_mmvlg.py converters take the same --cfg-options)')


_TRUE = ('1', 'on', 'yes', 'true')


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` asks for no network (read now, not at import)."""
    return any(os.environ.get(k, '').strip().lower() in _TRUE for k in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE'))


def hub_reachable(timeout: float = 3.0) -> bool:
    """A short probe of the Hugging Face hub (``HF_ENDPOINT``, default huggingface.co): one TCP connection with
    ``timeout`` seconds for the name lookup and the connection together (transformers would otherwise retry
    for about a minute before failing)."""
    import socket
    import threading
    from urllib.parse import urlparse
    url = urlparse(os.environ.get('HF_ENDPOINT', '') or 'https://huggingface.co')
    host, port = url.hostname or 'huggingface.co', url.port or (80 if url.scheme == 'http' else 443)
    ok = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass
    thread = threading.Thread(target=probe, daemon=True)  # the name lookup itself has no timeout
    thread.start()
    thread.join(timeout)
    return bool(ok)


def _in_hub_cache(name: str) -> bool:
    """Whether the hub cache holds ``name``'s ``config.json`` (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
        return isinstance(try_to_load_from_cache(name, 'config.json'), str)
    except Exception:  # an invalid repo id, an unreadable cache: not cached
        return False


def pretrained_source(name_or_path: str) -> Tuple[str, dict]:
    """The path and the ``from_pretrained`` keyword arguments of a pretrained text model, checked at once.

    A local folder is read with ``local_files_only``. A hub name is read from the hub cache without network
    when it is cached and the hub is offline (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``) or unreachable,
    and downloaded otherwise. What cannot be read raises :class:`FileNotFoundError` immediately, naming the
    config key to set, instead of the minute of retries transformers spends before failing: a path that does
    not exist, or a name that is not cached while the hub is offline or unreachable.
    """
    path = osp.expanduser(name_or_path)
    if osp.isdir(path):
        return path, dict(local_files_only=True)
    if osp.isabs(path) or name_or_path.startswith(('.', '~')) or osp.exists(path) or name_or_path.count('/') > 1:
        raise FileNotFoundError(f'HFTextEncoder: name_or_path {name_or_path!r} is not a folder; set it to a '
                                'pretrained model folder (config.json, the weights and the tokenizer files): '
                                + _set_key_hint('/path/to/model'))
    cached = _in_hub_cache(name_or_path)
    offline = hub_offline()
    if not offline and hub_reachable():
        return path, {}
    if cached:
        return path, dict(local_files_only=True)
    why = ('the Hugging Face hub is offline (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)' if offline else
           'the Hugging Face hub cannot be reached (no network)')
    folder = f'/models/{osp.basename(name_or_path)}'
    raise FileNotFoundError(f'HFTextEncoder: name_or_path {name_or_path!r} is not a local folder, it is not in '
                            f'the Hugging Face cache and {why}; download it where there is network (e.g. '
                            f'`huggingface-cli download {name_or_path} --local-dir {folder}`) and point the config '
                            'at the folder: ' + _set_key_hint(folder))


@MODELS.register_module()
class HFTextEncoder(BaseModule):
    r"""A Hugging Face text encoder (BERT, RoBERTa, ...) and its tokenizer, with an API to drive its layers.

    Two ways to build it:

    * ``name_or_path``: a local folder or a hub name of a pretrained model (``'roberta-base'``,
      ``'bert-base-uncased'``, ...): the pretrained tokenizer and weights are loaded (offline when a
      folder is given; hub names need the files in the local cache when there is no network).
    * ``model_config`` + ``tokenizer``: a model built from a config dict (e.g. a 2-layer BERT of width
      128) with random weights, and a word-level tokenizer over a vocabulary (a list, a file, or a vocabulary
      shipped with mmvlg such as ``'synthref'``), for runs that must not download anything.

    The steps of :meth:`forward` are public, so that a model can run them separately:

    .. code:: text

        texts ─ tokenize ─ input_ids, attention_mask, offsets          (bs, L)      MLM masks input_ids here
                              │
                            embed ─ (bs, L, C) ─ forward_layers(start, end, context=...) ─ (bs, L, C)
                                                   └─ per layer: forward_layer: self-attention
                                                      [+ cross-attention to context tokens] + FFN

    :meth:`encode` runs embed + layers from pre-tokenized ids. Running a range of layers serves models that
    split the encoder (X-VLM: layers 0-5 text encoder, 6-11 cross encoder), feed it other tokens (SOHO's single
    stream over text + visual tokens) or interleave it with another stream (ViLBERT's co-attention, FIBER's
    fusion through ``self_attn_fusion``). ``cross_attention=dict(start=6)`` adds a BERT cross-attention block
    (the host layer's own attention class: query from the text, keys/values from the context, output dense +
    residual + LayerNorm) after the self-attention of layers ``start .. end-1``; these blocks start fresh
    (normal(0, ``initializer_range``) weights, zero biases), also when the encoder weights are pretrained, and
    live in :attr:`cross_attns` (keys ``cross_attns.<layer>.self.query.weight``, ...).

    With ``cross_attention=dict(start=6, num_contexts=2)`` (X-VLM's NLVR2 encoder for two images) every layer of
    ``[start, end)`` is replicated in place, one copy per context: copy ``j`` of layer ``i`` is layer
    ``start + num_contexts * (i - start) + j`` (self-attention, cross-attention to context ``j`` and FFN; the
    text passes through the copies one after the other), and the copies of one layer share their cross-attention
    key and value projections (``shared``), as the authors' ``share_cross_attention``. :meth:`forward_layers` then
    takes a list of ``num_contexts`` contexts. A state dict of the single-context layout (e.g. an X-VLM
    pre-training checkpoint, layers ``0 .. num_layers - 1`` before the replication) is expanded when loaded: each
    layer and cross-attention block of ``[start, end)`` goes to all its copies (:meth:`expand_state_dict`).

    Args:
        name_or_path (str, optional): Pretrained model folder or hub name.
        model_config (dict, optional): ``model_type`` (``'bert'``/``'roberta'``) and the fields of the
            corresponding ``transformers`` config.
        tokenizer (dict, optional): ``dict(type='word', vocab_file=... | vocab=[...] | vocab='synthref',
            lower_case=True)``.
        max_length (int): Longest tokenized text; longer texts are truncated. Defaults to 256.
        frozen (bool): Freeze the encoder (no gradients; the cross-attention blocks still learn). Defaults to
            False.
        use_pooler (bool): Keep the model's pooler (for sentence-level heads). Defaults to False.
        pretrained_weights (bool): With ``name_or_path``, load the folder's weights (default). If False, only
            its tokenizer and ``config.json`` are read and the model gets random weights, e.g. when every
            weight comes from a converted checkpoint (``tools/model_converters/mdetr_to_mmvlg.py``); then the
            folder needs no weight file. Defaults to True.
        cross_attention (dict, optional): ``start`` (first layer with a cross-attention block), ``end`` (one
            past the last; default: the number of layers), ``context_dims`` (width of the context tokens;
            default: the encoder's width), ``num_contexts`` (default 1; n > 1: the layers of ``[start, end)`` are
            replicated n times, see above) and ``shared`` (the cross-attention projections the n copies of a layer
            share; default ``('key', 'value')``). None: no cross-attention.
        checkpoint_vocab (list | str, optional): The word vocabulary (a list of words, a built-in name, or
            ``dict(vocab_file=...)``) of the checkpoints loaded into this encoder, when it is not the
            encoder's own (``tokenizer.vocab``): e.g. a pre-training over captions loaded into a VQA model whose
            vocabulary also has the question words. On load, a word-embedding matrix with that vocabulary's rows
            (special tokens first, as :func:`build_word_tokenizer` numbers them) is mapped onto this encoder's
            vocabulary word by word; words the checkpoint lacks keep their current (initial) rows, and the
            mapping is logged. Other vocabulary-sized tensors (an MLM head's bias and output matrix) map with
            :meth:`remap_vocab_rows`. Only with a word tokenizer (``model_config``). Defaults to None.
        model_kwargs (dict, optional): With ``name_or_path``: fields of the folder's model config to override
            when the model is built, passed to ``from_pretrained`` (e.g. ``dict(num_hidden_layers=3)`` keeps BERT's
            first 3 layers, SOHO's ablation Transformer). Defaults to None.
    """

    def __init__(self, name_or_path: Optional[str] = None, model_config: Optional[dict] = None,
                 tokenizer: Optional[dict] = None, max_length: int = 256, frozen: bool = False,
                 use_pooler: bool = False, pretrained_weights: bool = True, cross_attention: Optional[dict] = None,
                 checkpoint_vocab: Union[Sequence[str], str, dict, None] = None, model_kwargs: Optional[dict] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if (name_or_path is None) == (model_config is None):
            raise ValueError('HFTextEncoder: give exactly one of name_or_path (pretrained) and model_config')
        if checkpoint_vocab is not None and model_config is None:
            raise ValueError('HFTextEncoder: checkpoint_vocab maps word-tokenizer vocabularies; it needs model_config '
                             'with a word tokenizer, not name_or_path')
        self._vocab_map: Optional[Tuple[int, Tensor, Tensor, List[str]]] = None
        import transformers
        self.name_or_path = name_or_path
        self.max_length = max_length
        self.use_pooler = use_pooler
        self.pretrained_weights = pretrained_weights
        if model_kwargs and name_or_path is None:
            raise ValueError('HFTextEncoder: model_kwargs override the config of name_or_path; with model_config, '
                             'put the fields in model_config')
        self.model_kwargs = dict(model_kwargs or {})
        # The weights built here (pretrained, or the model's own random initialization) count as initialized:
        # the first ``init_weights`` keeps them; a later one after ``_is_init`` was reset re-initializes.
        self._built_weights = True
        if name_or_path is not None:
            path, kwargs = self._pretrained_source()
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, use_fast=True, **kwargs)
            if pretrained_weights:
                self.model = transformers.AutoModel.from_pretrained(path, add_pooling_layer=use_pooler, **kwargs,
                                                                    **self.model_kwargs)
            else:
                config = transformers.AutoConfig.from_pretrained(path, **kwargs, **self.model_kwargs)
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
            self._vocab_map = self._build_vocab_map(vocab, checkpoint_vocab)
            cfg.setdefault('vocab_size', len(self.tokenizer))
            cfg.setdefault('max_position_embeddings', max(max_length, 64))
            cfg.setdefault('pad_token_id', self.tokenizer.pad_token_id)
            config = transformers.AutoConfig.for_model(model_type, **cfg)
            self.model = transformers.AutoModel.from_config(config, add_pooling_layer=use_pooler)
        self.embed_dims = self.model.config.hidden_size
        self.frozen = frozen
        if frozen:
            self.model.requires_grad_(False)
        self.cross_attns = nn.ModuleDict()
        self.num_contexts = 1
        self.context_index: Dict[int, int] = {}  # cross-attention layer -> the context it attends to
        self._single_context_layers: Optional[Tuple[int, int, int]] = None  # (start, end, num_layers) before copies
        if cross_attention is not None:
            self._build_cross_attention(**cross_attention)

    # ------------------------------------------------------------------------------------ construction
    def _build_cross_attention(self, start: int, end: Optional[int] = None, context_dims: Optional[int] = None,
                               num_contexts: int = 1, shared: Sequence[str] = ('key', 'value')) -> None:
        n = self.num_layers
        end = n if end is None else end
        if not 0 <= start < end <= n:
            raise ValueError(f'HFTextEncoder: cross_attention layers [{start}, {end}) must lie in [0, {n})')
        if not isinstance(num_contexts, int) or num_contexts < 1:
            raise ValueError(f'HFTextEncoder: cross_attention.num_contexts must be an int >= 1, got {num_contexts!r}')
        config = self.model.config
        self.context_dims = context_dims or self.embed_dims
        self.num_contexts = num_contexts
        if num_contexts > 1:
            self._replicate_layers(start, end, num_contexts)
            end = start + num_contexts * (end - start)
        for i in range(start, end):
            attn_cls = type(self.layers[i].attention)
            try:
                block = attn_cls(config, is_cross_attention=True)  # transformers 5
            except TypeError:  # transformers 4.x: the attention is a cross-attention when given encoder states
                block = attn_cls(config)
            if self.context_dims != self.embed_dims:
                inner = block.self
                inner.key = nn.Linear(self.context_dims, inner.all_head_size)
                inner.value = nn.Linear(self.context_dims, inner.all_head_size)
            self.cross_attns[str(i)] = block
            self.context_index[i] = (i - start) % num_contexts
        if num_contexts > 1:
            names = list(shared)
            unknown = [m for m in names if not isinstance(getattr(self.cross_attns[str(start)].self, m, None),
                                                          nn.Module)]
            if unknown:
                raise ValueError(f'HFTextEncoder: cross_attention.shared names {unknown}, not projections of the '
                                 'cross-attention (e.g. query, key, value)')
            for i in range(start, end, num_contexts):
                first = self.cross_attns[str(i)].self
                for j in range(1, num_contexts):
                    for m in names:  # one module in every copy: the same parameters
                        setattr(self.cross_attns[str(i + j)].self, m, getattr(first, m))
        self._init_cross_attention()

    def _replicate_layers(self, start: int, end: int, copies: int) -> None:
        """Replace each layer of ``[start, end)`` by ``copies`` consecutive copies of it (same weights)."""
        self._single_context_layers = (start, end, self.num_layers)
        old = list(self.layers)
        new = old[:start]
        for i in range(start, end):
            new += [old[i]] + [copy.deepcopy(old[i]) for _ in range(copies - 1)]
        new += old[end:]
        self.model.encoder.layer = nn.ModuleList(new)
        self.model.config.num_hidden_layers = len(new)
        for k, layer in enumerate(new):  # the cache index of each attention (not used by mmvlg, kept consistent)
            for m in layer.modules():
                if hasattr(m, 'layer_idx'):
                    m.layer_idx = k

    def expand_state_dict(self, state_dict: Dict[str, Tensor], prefix: str = '') -> Dict[str, Tensor]:
        """Map a state dict of the single-context layout (before the ``num_contexts`` replication: the layers
        ``0 .. L-1`` of the checkpoint's encoder) to this encoder's: the keys of layer ``i`` of ``[start, end)``
        (``model.encoder.layer.<i>.*`` and ``cross_attns.<i>.*``) are given to each of its copies, later layers
        are shifted. A state dict that is not of that layout (its largest layer index is not ``L - 1``) is
        returned as is.

        Args:
            state_dict (dict): Keys with ``prefix`` (e.g. ``'language_model.'``), of any module.
            prefix (str): The encoder's prefix in ``state_dict``.

        Returns:
            dict: A new dict (or ``state_dict`` itself when nothing is to be mapped).
        """
        if self._single_context_layers is None:
            return state_dict
        start, end, n_single = self._single_context_layers
        pattern = re.compile(rf'^{re.escape(prefix)}(model\.encoder\.layer|cross_attns)\.(\d+)\.(.*)$')
        found = [int(m.group(2)) for m in map(pattern.match, state_dict) if m]
        if not found or max(found) != n_single - 1:
            return state_dict
        copies = self.num_contexts
        out = {}
        for key, value in state_dict.items():
            m = pattern.match(key)
            if m is None:
                out[key] = value
                continue
            i = int(m.group(2))
            if i < start:
                targets = [i]
            elif i < end:
                targets = [start + copies * (i - start) + j for j in range(copies)]
            else:
                targets = [i + (copies - 1) * (end - start)]
            for t in targets:
                out[f'{prefix}{m.group(1)}.{t}.{m.group(3)}'] = value
        return out

    @staticmethod
    def _build_vocab_map(vocab: Sequence[str], checkpoint_vocab) -> Optional[Tuple[int, Tensor, Tensor, List[str]]]:
        """``(checkpoint rows, checkpoint indices, own indices, new words)`` of the words both vocabularies have
        (special tokens included), or None without ``checkpoint_vocab``."""
        if checkpoint_vocab is None:
            return None
        if isinstance(checkpoint_vocab, dict):
            src_words = resolve_vocab(checkpoint_vocab.get('vocab'), checkpoint_vocab.get('vocab_file'))
        else:
            src_words = resolve_vocab(checkpoint_vocab)

        def table(words):
            return list(SPECIAL_TOKENS) + [w for w in dict.fromkeys(words) if w not in SPECIAL_TOKENS]

        src, own = table(src_words), table(vocab)
        src_index = {w: i for i, w in enumerate(src)}
        pairs = [(src_index[w], i) for i, w in enumerate(own) if w in src_index]
        new_words = [w for w in own if w not in src_index]
        if len(src) == len(own) and src != own:
            raise ValueError(f'HFTextEncoder: checkpoint_vocab has as many tokens ({len(src)}) as the own vocabulary '
                             'but other words or another order; a checkpoint of either could not be told apart by '
                             'its size. Add the new words after the checkpoint vocabulary\'s words instead')
        return (len(src), torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs]), new_words)

    def remap_vocab_rows(self, value: Tensor, current: Tensor, name: str = '') -> Tensor:
        """A vocabulary-sized tensor of a ``checkpoint_vocab`` checkpoint (first dimension its vocabulary
        size) mapped onto this encoder's vocabulary: the rows of shared words from ``value``, the others from
        ``current`` (the module's present values). A tensor of another size is returned as is.

        Args:
            value (Tensor): The checkpoint's tensor.
            current (Tensor): The module's tensor (first dimension this encoder's vocabulary size).
            name (str): The key, for the log.
        """
        if self._vocab_map is None or value.dim() == 0:
            return value
        rows, src, dst, new_words = self._vocab_map
        if value.shape[0] != rows or rows == current.shape[0] or tuple(value.shape[1:]) != tuple(current.shape[1:]):
            return value  # not of the checkpoint vocabulary (e.g. this model's own checkpoint)
        out = current.detach().clone().to(value.dtype)
        out[dst] = value[src].to(out.device)
        from mmengine.logging import print_log
        shown = ', '.join(new_words[:10]) + (', ...' if len(new_words) > 10 else '')
        print_log(f'HFTextEncoder: {name or "tensor"} of the checkpoint vocabulary ({rows} tokens) mapped onto this '
                  f'vocabulary ({current.shape[0]} tokens) by word: {len(src)} rows loaded, {len(new_words)} new '
                  f'words keep their initial rows ({shown})', logger='current')
        return out

    def remap_vocab_state_dict(self, state_dict: Dict[str, Tensor], prefix: str = '') -> None:
        """Map this encoder's word-embedding entry of ``state_dict`` (with ``prefix``) from the
        ``checkpoint_vocab`` vocabulary onto the own one, in place (see :meth:`remap_vocab_rows`)."""
        key = f'{prefix}model.embeddings.word_embeddings.weight'
        if self._vocab_map is not None and key in state_dict:
            state_dict[key] = self.remap_vocab_rows(state_dict[key], self.word_embeddings.weight, key)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        self.remap_vocab_state_dict(state_dict, prefix)
        if self._single_context_layers is not None:
            expanded = self.expand_state_dict(state_dict, prefix)
            if expanded is not state_dict:  # in place: the children read their keys from this dict afterwards
                from mmengine.logging import print_log
                print_log(f'HFTextEncoder ({prefix or "root"}): a single-context state dict; layers '
                          f'{self._single_context_layers[:2]} and their cross-attention copied to each of the '
                          f'{self.num_contexts} contexts\' copies', logger='current')
                for key in [k for k in state_dict if k.startswith(prefix)]:
                    del state_dict[key]
                state_dict.update(expanded)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def _init_cross_attention(self) -> None:
        """BERT's initialization of the cross-attention blocks: normal(0, initializer_range) weights, zero
        biases, unit LayerNorms."""
        std = getattr(self.model.config, 'initializer_range', 0.02)
        for m in self.cross_attns.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                m.reset_parameters()

    def _pretrained_source(self) -> Tuple[str, dict]:
        """The path and the ``from_pretrained`` keyword arguments of ``name_or_path`` (see
        :func:`pretrained_source`: what cannot be read fails at once, naming the config key)."""
        return pretrained_source(self.name_or_path)

    def init_weights(self) -> None:
        """Initialize the weights.

        The first call keeps the weights built by the constructor (the pretrained ones, or the random draw of
        ``model_config``, and the fresh cross-attention blocks) and applies ``init_cfg`` if any. A later call,
        after ``_is_init`` was reset (e.g. by :class:`~mmvlg.engine.hooks.SiRiHook` re-initializing the
        language backbone), restores the initialization: the pretrained weights are loaded again from
        ``name_or_path``, a ``model_config`` model draws new random weights with its own (Hugging Face)
        initialization, and the cross-attention blocks are drawn again.
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
            pretrained = transformers.AutoModel.from_pretrained(path, add_pooling_layer=self.use_pooler, **kwargs,
                                                                **self.model_kwargs)
            weights = {f'model.{k}': v for k, v in pretrained.state_dict().items()}
            weights = self.expand_state_dict(weights)  # the layer copies of num_contexts > 1
            self.model.load_state_dict({k[len('model.'):]: v for k, v in weights.items()}, strict=True)
            del pretrained
        else:
            # Hugging Face skips modules and tensors flagged as initialized (e.g. loaded): clear the flags.
            for obj in [*self.model.modules(), *self.model.parameters(), *self.model.buffers()]:
                if getattr(obj, '_is_hf_initialized', False):
                    obj._is_hf_initialized = False
            self.model.init_weights()
        self._init_cross_attention()

    # ------------------------------------------------------------------------------------------ parts
    @property
    def layers(self) -> nn.ModuleList:
        """The encoder's layers (``model.encoder.layer``)."""
        return self.model.encoder.layer

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def word_embeddings(self) -> nn.Embedding:
        """The input word embeddings, (vocab_size, C) (e.g. to tie an MLM decoder to them)."""
        return self.model.get_input_embeddings()

    @property
    def cross_attention_layers(self) -> List[int]:
        """The indices of the layers that have a cross-attention block."""
        return sorted(int(k) for k in self.cross_attns)

    def cross_attention_groups(self) -> List[List[int]]:
        """The cross-attention layers grouped by the layer they copy (``num_contexts`` each; one each when 1)."""
        layers = self.cross_attention_layers
        n = self.num_contexts
        return [layers[k:k + n] for k in range(0, len(layers), n)]

    # -------------------------------------------------------------------------------------- tokenize
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
        self._warn_unknown_words(texts, enc['input_ids'], enc['offset_mapping'])
        out = dict(input_ids=enc['input_ids'], attention_mask=enc['attention_mask'],
                   offsets=enc['offset_mapping'])
        if device is not None:
            out = {k: v.to(device) for k, v in out.items()}
        return out

    def _warn_unknown_words(self, texts: Sequence[str], input_ids: Tensor, offsets: Tensor) -> None:
        """Warn once per word (per encoder) that the tokenizer reads as its unknown token, e.g. a word outside a
        word-level vocabulary ("cup" for SynthRef's): the model sees ``[UNK]`` there, not the word."""
        unk = getattr(self.tokenizer, 'unk_token_id', None)
        if unk is None or not bool((input_ids == unk).any()):
            return
        warned = self.__dict__.setdefault('_warned_unknown', set())
        for i, j in (input_ids == unk).nonzero().tolist():
            start, end = offsets[i, j].tolist()
            word = texts[i][start:end]
            if word.lower() in warned:
                continue
            warned.add(word.lower())
            size = len(self.tokenizer)
            warnings.warn(f'HFTextEncoder: {word!r} (in {texts[i]!r}) is not in the tokenizer\'s vocabulary of '
                          f'{size} tokens and is read as {self.tokenizer.unk_token}; the model was not trained on '
                          'it (this warning is given once per word)', stacklevel=3)

    # ---------------------------------------------------------------------------------------- layers
    def embed(self, input_ids: Tensor, token_type_ids: Optional[Tensor] = None,
              position_ids: Optional[Tensor] = None) -> Tensor:
        """The embedding layer (word + position (+ token type) embeddings, LayerNorm, dropout).

        Args:
            input_ids (Tensor): (bs, L) token ids.
            token_type_ids (Tensor, optional): (bs, L) segment ids (default 0).
            position_ids (Tensor, optional): (bs, L) positions (default: the model's own, e.g. RoBERTa's
                padding-aware ones).

        Returns:
            Tensor: (bs, L, C) the first layer's input.
        """
        return self.model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids)

    def self_attention_mask(self, embeds: Tensor, attention_mask: Tensor):
        """The layers' self-attention mask (:func:`self_attention_mask`) for (bs, L, C) ``embeds`` and a (bs, L)
        0/1 ``attention_mask``; pass it to :meth:`forward_layer`."""
        return self_attention_mask(self.model, embeds, attention_mask)

    def cross_attention_mask(self, embeds: Tensor, context: Tensor, context_mask: Optional[Tensor]):
        """The cross-attention mask (:func:`cross_attention_mask`) from (bs, L, C) ``embeds`` to (bs, M, C_ctx)
        ``context`` with a (bs, M) 0/1 ``context_mask`` (None: all real); pass it to :meth:`forward_layer`."""
        return cross_attention_mask(self.model, embeds, context, context_mask)

    def forward_layer(self, index: int, hidden: Tensor, layer_mask=None, context: Optional[Tensor] = None,
                      context_layer_mask=None, self_attn_fusion: Optional[Callable[[Tensor], Tensor]] = None,
                      output_norm: bool = True) -> Tensor:
        """Run layer ``index`` (post-norm BERT/RoBERTa layer):

        ``a = LN(h + SA'(h))``, ``SA' = fusion(dropout(dense(SelfAtt(h))))``; with ``context`` and a
        cross-attention block at this layer, ``a = LN(a + dropout(dense(CrossAtt(a, context))))``; then
        ``out = LN(a + FFN(a))``. Without fusion, context and with ``output_norm`` this is the Hugging Face
        layer's own forward.

        Args:
            index (int): The layer.
            hidden (Tensor): (bs, L, C) its input.
            layer_mask: The self-attention mask of :meth:`self_attention_mask` (None: attend to all).
            context (Tensor, optional): (bs, M, C_ctx) tokens of another modality, attended to by the layer's
                cross-attention block (an error if it has none).
            context_layer_mask: The mask of :meth:`cross_attention_mask` (None: attend to all).
            self_attn_fusion (callable, optional): Maps the self-attention branch (bs, L, C), before the residual
                sum and the LayerNorm, to its replacement (FIBER adds its gated cross-attention there).
            output_norm (bool): Apply the output LayerNorm of the FFN. Defaults to True.

        Returns:
            Tensor: (bs, L, C).
        """
        layer = self.layers[index]
        if context is not None and str(index) not in self.cross_attns:
            raise ValueError(f'HFTextEncoder: layer {index} has no cross-attention (cross_attention layers: '
                             f'{self.cross_attention_layers})')
        if self_attn_fusion is None and context is None and output_norm:
            return _first(layer(hidden, layer_mask))
        att = layer.attention
        sa = _first(att.self(hidden, attention_mask=layer_mask))
        sa = att.output.dropout(att.output.dense(sa))
        if self_attn_fusion is not None:
            sa = self_attn_fusion(sa)
        h = att.output.LayerNorm(sa + hidden)
        if context is not None:
            h = _first(self.cross_attns[str(index)](h, encoder_hidden_states=context,
                                                    encoder_attention_mask=context_layer_mask))
        if output_norm:
            return layer.feed_forward_chunk(h)
        out = layer.output
        return out.dropout(out.dense(layer.intermediate(h))) + h

    def forward_layers(self, hidden: Tensor, attention_mask: Optional[Tensor] = None, start: int = 0,
                       end: Optional[int] = None, context: Union[Tensor, Sequence[Tensor], None] = None,
                       context_mask: Union[Tensor, Sequence[Optional[Tensor]], None] = None) -> Tensor:
        """Run layers ``start .. end-1`` on ``hidden``; with ``context``, the layers of the range that have a
        cross-attention block attend to it (the others do not). With ``cross_attention.num_contexts`` n > 1,
        ``context`` is a list of n tensors (and ``context_mask`` None or a list of n masks or Nones): each
        cross-attention layer attends to the context of its copy (:attr:`context_index`).

        Args:
            hidden (Tensor): (bs, L, C) the input of layer ``start`` (:meth:`embed`'s output for 0, or any
                tokens of width C, e.g. text and visual tokens concatenated).
            attention_mask (Tensor, optional): (bs, L) 0/1, 1 at real tokens (None: all real).
            start (int): First layer. Defaults to 0.
            end (int, optional): One past the last layer. Defaults to the number of layers.
            context (Tensor, optional): (bs, M, C_ctx) tokens of another modality.
            context_mask (Tensor, optional): (bs, M) 0/1, 1 at real context tokens (None: all real).

        Returns:
            Tensor: (bs, L, C) the output of layer ``end - 1``.
        """
        end = self.num_layers if end is None else end
        if not 0 <= start <= end <= self.num_layers:
            raise ValueError(f'HFTextEncoder: layer range [{start}, {end}) outside [0, {self.num_layers}]')
        cross = [i for i in range(start, end) if str(i) in self.cross_attns]
        if context is not None and not cross:
            raise ValueError(f'HFTextEncoder: a context is given but no layer of [{start}, {end}) has a '
                             f'cross-attention (cross_attention layers: {self.cross_attention_layers})')
        if attention_mask is None:
            attention_mask = hidden.new_ones(hidden.shape[:2], dtype=torch.long)
        layer_mask = self.self_attention_mask(hidden, attention_mask)
        if self.num_contexts > 1 and context is not None:
            if not isinstance(context, (list, tuple)) or len(context) != self.num_contexts:
                raise ValueError(f'HFTextEncoder: the cross-attention layers attend to {self.num_contexts} contexts '
                                 '(cross_attention.num_contexts): give context as a list of that many tensors, '
                                 f'got {type(context).__name__}')
            masks = [None] * self.num_contexts if context_mask is None else list(context_mask)
            if len(masks) != self.num_contexts:
                raise ValueError(f'HFTextEncoder: {len(masks)} context masks for {self.num_contexts} contexts')
            contexts = list(context)
            ctx_masks = [self.cross_attention_mask(hidden, c, m) for c, m in zip(contexts, masks)]
        elif isinstance(context, (list, tuple)):
            raise ValueError('HFTextEncoder: a list of contexts needs cross_attention.num_contexts > 1; this encoder '
                             'has one context: give one tensor')
        else:
            contexts = [context]
            ctx_masks = [self.cross_attention_mask(hidden, context, context_mask) if context is not None else None]
        for i in range(start, end):
            use = context is not None and i in cross
            j = self.context_index.get(i, 0)
            hidden = self.forward_layer(i, hidden, layer_mask, contexts[j] if use else None,
                                        ctx_masks[j] if use else None)
        return hidden

    # ---------------------------------------------------------------------------------------- encode
    def encode(self, input_ids: Tensor, attention_mask: Tensor, offsets: Optional[Tensor] = None,
               token_type_ids: Optional[Tensor] = None, end: Optional[int] = None, context: Optional[Tensor] = None,
               context_mask: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Encode pre-tokenized texts (e.g. :meth:`tokenize`'s output with masked ids for MLM:
        ``encode(**dict(tok, input_ids=masked))``).

        Args:
            input_ids (Tensor): (bs, L) token ids.
            attention_mask (Tensor): (bs, L) 0/1, 1 at real tokens.
            offsets (Tensor, optional): (bs, L, 2) character offsets, passed through.
            token_type_ids (Tensor, optional): (bs, L) segment ids.
            end (int, optional): Run layers 0 .. end-1 only (default: all).
            context (Tensor, optional): (bs, M, C_ctx) tokens the cross-attention layers attend to.
            context_mask (Tensor, optional): (bs, M) 0/1, 1 at real context tokens.

        Returns:
            dict: ``embeds`` (bs, L, C) hidden states of the last layer run; ``mask`` (bs, L) bool, True at real
            tokens; ``input_ids`` (bs, L); ``offsets`` (bs, L, 2) when given; ``pooled`` (bs, C), the first
            token's state (or the pooler output when ``use_pooler``).
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not (self.frozen and context is None)):
            if context is None and end is None:
                out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
                hidden, pooled = out.last_hidden_state, getattr(out, 'pooler_output', None)
            else:
                hidden = self.forward_layers(self.embed(input_ids, token_type_ids), attention_mask, end=end,
                                             context=context, context_mask=context_mask)
                pooled = self.model.pooler(hidden) if getattr(self.model, 'pooler', None) is not None else None
        result = dict(embeds=hidden, mask=attention_mask.bool(), input_ids=input_ids,
                      pooled=pooled if pooled is not None else hidden[:, 0])
        if offsets is not None:
            result['offsets'] = offsets
        return result

    def forward(self, texts: List[str], device=None) -> Dict[str, Tensor]:
        """Encode a batch of texts (:meth:`tokenize`, then :meth:`encode`).

        Returns:
            dict: ``embeds`` (bs, L, C) last hidden states; ``mask`` (bs, L) bool, True at real tokens;
            ``offsets`` (bs, L, 2); ``input_ids`` (bs, L); ``pooled`` (bs, C), the first token's state
            (or the pooler output when ``use_pooler``).
        """
        return self.encode(**self.tokenize(texts, device))


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
