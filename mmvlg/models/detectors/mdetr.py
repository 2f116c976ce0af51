"""MDETR and SiRi's MDETR* (arXiv:2104.12763, arXiv:2207.13325)."""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.models.detectors import BaseDetector
from mmdet.models.layers import SinePositionalEncoding
from mmdet.structures import OptSampleList, SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor, nn

from mmvlg.registry import MODELS

from ..language_models import FeatureResizer
from ..layers.query_generators import grid_reference_boxes
from ..multimodal.base import VisionLanguageMixin


@MODELS.register_module()
class MDETR(VisionLanguageMixin, BaseDetector):
    r"""Modulated DETR for referring expressions and phrase grounding, with SiRi's improvements (MDETR*):
    low-level feature fusion in the neck, 16 queries, the 2-soft-token head and no contrastive loss, and
    optionally multi-task SiRi's auxiliary decoder with constant queries.

    .. code:: text

        image ─ backbone ─ neck ─┬─ flatten + 2-D sine pos ──┐
                                 │                           ├─ concat ─ VL encoder ─ memory (img + text)
        text ─ language_model ─ text_proj ───────────────────┘                          │
                                                                                        ├─ decoder(queries from
                                                                                        │  a query generator)
                                                                                        │  ─ bbox_head
                                                                                        └─ aux_decoder(constant
                                                                                           queries) ─ aux_head
                                                                                           (training only)

    Args:
        backbone (dict): Visual backbone (e.g. ``mmdet.ResNet`` returning stages 2 and 4).
        neck (dict): Projection to the transformer width (``LowLevelFusionNeck``).
        language_model (dict): Text encoder (``HFTextEncoder``).
        encoder (dict): ``VLTransformerEncoder``.
        decoder (dict): ``DetrTransformerDecoderSDPA``.
        bbox_head (dict): ``MDETRHead``.
        num_queries (int): Learnable decoder queries (16 in SiRi, 100 in MDETR).
        positional_encoding (dict): ``mmdet.SinePositionalEncoding`` arguments.
        text_dropout (float): Dropout of the text projection. Defaults to 0.1.
        aux_decoder (dict, optional): Multi-task SiRi: ``dict(decoder=..., head=..., queries='constant')``.
            A second decoder with its own head and weights on the same encoder memory, fed with constant
            grid queries (``'constant'``, :class:`~mmvlg.models.layers.ConstantGridQueries`), its own learnable
            ones (``'learnable'``, :class:`~mmvlg.models.layers.LearnedQueries`), the constant queries of the
            authors' released code (``'siri'``, :class:`~mmvlg.models.layers.SiRiGridQueries`:
            :func:`~mmvlg.models.layers.positional_encoding.siri_grid_query_embed` followed by a learnable
            LayerNorm ``aux_query_norm``, their ``pos_trans_norm``), or a query-generator config. Its losses
            are added with the prefix ``aux.``; it is not used at inference unless ``predict_with='aux'`` (the
            authors' multi-task code predicts with it).
        predict_with (str): ``'main'`` or ``'aux'``: which decoder predicts. Defaults to ``'main'``.
        queries (str | dict): Queries of the main decoder: ``'learnable'`` (MDETR/SiRi,
            :class:`~mmvlg.models.layers.LearnedQueries`), ``'constant'`` (SiRi's sine-cosine grid queries,
            appendix A, :class:`~mmvlg.models.layers.ConstantGridQueries`) or the config of a registered query
            generator (:class:`~mmvlg.models.layers.BaseQueryGenerator`; ``num_queries`` and ``embed_dims``
            are filled in). Defaults to ``'learnable'``. The named strategies live under the attributes their
            weights are saved with (``query_embedding``, ``query_constant``, ``aux_query_embedding``,
            ``aux_query_embedding_learned``, ``aux_query_norm``, ``token_queries``); a generator config under
            ``query_generator`` (``aux_query_generator`` for the auxiliary decoder).
        grid_reference (bool): With constant queries, predict each query's box relative to its grid cell
            (reference box: the grid point, with the cell's size), which gives the queries a spatial prior
            from the first step. Applies to the auxiliary decoder too when its queries are constant.
            Defaults to False.
        token_grounding_head (dict, optional): A training-only dense loss on the encoder's image tokens
            (:class:`TokenGroundingHead`); not part of MDETR/SiRi, off in the reference configs.
        token_queries (dict, optional): Two-stage queries for the main decoder (Deformable DETR's two-stage
            variant, not part of MDETR/SiRi): ``dict(box_size=0.25)``. The ``num_queries`` image tokens that
            ``token_grounding_head`` scores highest become the queries (:class:`~mmvlg.models.layers.\
TokenQueries`): each query is the sine embedding of its token's cell centre, its initial content the token's
            encoder output, and the head predicts its box relative to a reference box at that centre with sides
            ``box_size`` (normalized). Needs ``token_grounding_head``.
        data_preprocessor (dict): ``mmdet.DetDataPreprocessor``.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 language_model: ConfigType,
                 encoder: ConfigType,
                 decoder: ConfigType,
                 bbox_head: ConfigType,
                 num_queries: int = 16,
                 positional_encoding: ConfigType = dict(num_feats=128, normalize=True),
                 text_dropout: float = 0.1,
                 aux_decoder: OptConfigType = None,
                 predict_with: str = 'main',
                 queries: str = 'learnable',
                 grid_reference: bool = False,
                 token_grounding_head: OptConfigType = None,
                 token_queries: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        self.language_model = MODELS.build(language_model)
        self.encoder = MODELS.build(encoder)
        self.decoder = MODELS.build(decoder)
        self.bbox_head = MODELS.build(bbox_head)
        self.embed_dims = self.encoder.embed_dims
        self.num_queries = num_queries
        self.text_proj = FeatureResizer(self.language_model.embed_dims, self.embed_dims, text_dropout)
        self.positional_encoding = SinePositionalEncoding(**positional_encoding)
        # Query strategies (registered generators, see mmvlg.models.layers.query_generators). Each lives under
        # the attribute its parameters had before the strategies existed (query_embedding.weight,
        # aux_query_norm.weight, ...), so that released checkpoints, converters and SiRiHook's keep prefixes
        # see the same names. The construction order (and so the random draws) is the one of the flags.
        self.grid_reference = grid_reference
        self._query_attrs = {}
        if isinstance(queries, str) and queries not in ('learnable', 'constant'):
            raise ValueError(f'queries must be "learnable" or "constant", got {queries!r}')
        self.queries_type = queries if isinstance(queries, str) else queries['type']
        if token_queries is None:
            self._add_query_generator('main', queries)
        self.token_grounding_head = (MODELS.build(token_grounding_head) if token_grounding_head is not None
                                     else None)
        if token_queries is not None:
            if self.token_grounding_head is None:
                raise ValueError('token_queries needs a token_grounding_head to score the image tokens')
            self._add_query_generator('main', dict(type='TokenQueries', **token_queries))
        if predict_with not in ('main', 'aux'):
            raise ValueError(f'predict_with must be "main" or "aux", got {predict_with!r}')
        if predict_with == 'aux' and aux_decoder is None:
            raise ValueError('predict_with="aux" needs an aux_decoder')
        self.predict_with = predict_with
        self.with_aux_decoder = aux_decoder is not None
        if aux_decoder is not None:
            aux_decoder = dict(aux_decoder)
            aux_queries = aux_decoder.get('queries', 'constant')
            if isinstance(aux_queries, str) and aux_queries not in ('constant', 'learnable', 'siri'):
                raise ValueError(f'aux_decoder.queries must be "constant", "learnable" or "siri", '
                                 f'got {aux_queries!r}')
            self.aux_queries_type = aux_queries if isinstance(aux_queries, str) else aux_queries['type']
            self.aux_decoder = MODELS.build(aux_decoder['decoder'])
            self.aux_head = MODELS.build(aux_decoder['head'])
            self._add_query_generator('aux', aux_queries)

    # ------------------------------------------------------------------------------------- queries
    # (decoder, strategy name) -> attribute of the generator and its config
    _LEGACY_QUERIES = {
        ('main', 'learnable'): ('query_embedding', dict(type='LearnedQueries')),
        ('main', 'constant'): ('query_constant', dict(type='ConstantGridQueries')),
        ('aux', 'learnable'): ('aux_query_embedding_learned', dict(type='LearnedQueries')),
        ('aux', 'constant'): ('aux_query_embedding', dict(type='ConstantGridQueries')),
        ('aux', 'siri'): ('aux_query_norm', dict(type='SiRiGridQueries')),
    }

    def _add_query_generator(self, which: str, queries: Union[str, dict]) -> None:
        """Build the query generator of the main or auxiliary decoder from a strategy name (``'learnable'``,
        ``'constant'``, ``'siri'``) or a generator config, and register it under its attribute."""
        if isinstance(queries, str):
            name, cfg = self._LEGACY_QUERIES[(which, queries)]
            cfg = dict(cfg)
            if cfg['type'] == 'ConstantGridQueries':
                cfg['with_reference'] = self.grid_reference
        else:
            cfg = dict(queries)
            name = {('main', 'TokenQueries'): 'token_queries'}.get(
                (which, cfg['type']), 'query_generator' if which == 'main' else 'aux_query_generator')
        cfg.setdefault('num_queries', self.num_queries)
        cfg.setdefault('embed_dims', self.embed_dims)
        setattr(self, name, MODELS.build(cfg))
        self._query_attrs[which] = name

    def get_query_generator(self, which: str = 'main') -> nn.Module:
        """The query generator of the ``'main'`` or ``'aux'`` decoder."""
        return getattr(self, self._query_attrs[which])

    @property
    def grid_reference_boxes(self) -> Tensor:
        """(num_queries, 4): the reference boxes (cx, cy, w, h) of the constant grid queries."""
        return grid_reference_boxes(self.num_queries).to(self.bbox_head.class_embed.weight.device)

    def _reference(self, which: str) -> Optional[Tensor]:
        """Fixed reference boxes of a decoder's queries (constant queries with ``grid_reference``) or None."""
        return getattr(self.get_query_generator(which), 'reference_boxes', None)

    def query_inputs(self, enc: dict, which: str = 'main',
                     batch_data_samples: OptSampleList = None) -> Dict[str, Optional[Tensor]]:
        """The decoder inputs of the main or auxiliary decoder from its query generator (mmdet's
        ``pre_decoder``): ``query_pos`` (bs, num_queries, C), ``query_content`` (bs, num_queries, C) or None,
        ``reference`` ((num_queries, 4) or (bs, num_queries, 4)) or None."""
        generator = self.get_query_generator(which)
        kwargs = {}
        if generator.requires_token_scores:
            with torch.no_grad():
                kwargs['token_scores'] = self.token_grounding_head(enc['memory'][:, :enc['num_img_tokens']])
        return generator(enc, batch_data_samples, **kwargs)

    # ------------------------------------------------------------------------------------- encoding
    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor]:
        return self.neck(self.backbone(batch_inputs))

    def encode(self, batch_inputs: Tensor, batch_data_samples: SampleList,
               need_weights: bool = False) -> Dict[str, Union[Tensor, dict, list]]:
        """Image and text features through the vision-language encoder.

        Returns:
            dict: ``memory`` (bs, N_img + L, C), ``memory_pos`` (bs, N_img + L, C), ``memory_mask``
            (bs, N_img + L) True at padding, ``text`` (the language model's outputs), ``num_img_tokens``,
            ``feat_shape`` (h, w) and ``attn_weights`` (every layer's (bs, N, N) weights, if asked).
        """
        feat = self.extract_feat(batch_inputs)[-1]
        mask = F.interpolate(self.padding_mask(batch_inputs, batch_data_samples)[None].float(),
                             size=feat.shape[-2:])[0].bool()
        pos = self.positional_encoding(mask)
        img_tokens = feat.flatten(2).transpose(1, 2)
        img_pos = pos.flatten(2).transpose(1, 2).to(img_tokens.dtype)
        text = self.language_model([ds.text for ds in batch_data_samples], device=batch_inputs.device)
        txt_tokens = self.text_proj(text['embeds']).to(img_tokens.dtype)
        x = torch.cat([img_tokens, txt_tokens], dim=1)
        x_pos = torch.cat([img_pos, torch.zeros_like(txt_tokens)], dim=1)
        x_mask = torch.cat([mask.flatten(1), ~text['mask']], dim=1)
        memory, weights = self.encoder(x, x_pos, x_mask, need_weights)
        return dict(memory=memory, memory_pos=x_pos, memory_mask=x_mask, text=text,
                    num_img_tokens=img_tokens.shape[1], feat_shape=tuple(feat.shape[-2:]),
                    input_shape=tuple(batch_inputs.shape[-2:]), attn_weights=weights)

    def decode(self, enc: dict, which: str = 'main', batch_data_samples: OptSampleList = None) -> Tensor:
        """Run the main or the auxiliary decoder. Returns (num_layers, bs, num_queries, C)."""
        return self.decode_with_reference(enc, which, batch_data_samples)[0]

    def decode_with_reference(self, enc: dict, which: str = 'main',
                              batch_data_samples: OptSampleList = None) -> Tuple[Tensor, Optional[Tensor]]:
        """Run the main or the auxiliary decoder.

        Returns:
            tuple: hidden states (num_layers, bs, num_queries, C) and the queries' reference boxes for the
            head (``(num_queries, 4)`` or ``(bs, num_queries, 4)``), or None when boxes are absolute.
        """
        decoder = self.decoder if which == 'main' else self.aux_decoder
        q = self.query_inputs(enc, which, batch_data_samples)
        hidden = decoder(q['query_pos'], enc['memory'], enc['memory_pos'], enc['memory_mask'], q['query_content'])
        return hidden, q['reference']

    # ------------------------------------------------------------------------------------ contracts
    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        enc = self.encode(batch_inputs, batch_data_samples)
        n = enc['num_img_tokens']
        head_kwargs = dict(offsets=enc['text']['offsets'], text_memory=enc['memory'][:, n:],
                           text_mask=enc['text']['mask'])
        hidden, reference = self.decode_with_reference(enc, 'main', batch_data_samples)
        losses = self.bbox_head.loss(hidden, batch_data_samples, reference=reference, **head_kwargs)
        if self.token_grounding_head is not None:
            losses.update(self.token_grounding_head.loss(enc['memory'][:, :n], enc['memory_mask'][:, :n],
                                                         batch_data_samples, enc['feat_shape'],
                                                         tuple(batch_inputs.shape[-2:])))
        if self.with_aux_decoder:
            hidden, reference = self.decode_with_reference(enc, 'aux', batch_data_samples)
            losses.update(self.aux_head.loss(hidden, batch_data_samples, prefix='aux.', reference=reference,
                                             **head_kwargs))
        return losses

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList, rescale: bool = True) -> SampleList:
        """Predict boxes ranked for each expression; ``pred_instances`` holds every query sorted by score
        (top-1 is the answer; the ranking gives Prec@5/@10)."""
        enc = self.encode(batch_inputs, batch_data_samples)
        head = self.bbox_head if self.predict_with == 'main' else self.aux_head
        hidden, reference = self.decode_with_reference(enc, self.predict_with, batch_data_samples)
        results = head.predict(hidden, batch_data_samples, rescale=rescale, reference=reference)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: OptSampleList = None) -> Tuple[Tensor, Tensor]:
        """Raw outputs of the predicting decoder: soft-token logits and normalized boxes,
        (num_layers, bs, num_queries, ...)."""
        enc = self.encode(batch_inputs, batch_data_samples)
        head = self.bbox_head if self.predict_with == 'main' else self.aux_head
        return head(*self.decode_with_reference(enc, self.predict_with, batch_data_samples))

    def cross_modal_attention(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                              layers: Optional[List[int]] = None) -> Tensor:
        """Attention from the text tokens to the image tokens in the encoder (SiRi's Fig. 7).

        Returns:
            Tensor: (bs, h, w) per image: the attention of the real text tokens to every image position,
            summed over the chosen encoder layers (all by default) and averaged over tokens and heads.
        """
        enc = self.encode(batch_inputs, batch_data_samples, need_weights=True)
        n = enc['num_img_tokens']
        weights = enc['attn_weights']
        chosen = [weights[i] for i in (layers if layers is not None else range(len(weights)))]
        w = torch.stack(chosen).sum(0)[:, n:, :n]  # (bs, L, N_img)
        tmask = enc['text']['mask'].float()
        att = (w * tmask[..., None]).sum(1) / tmask.sum(1, keepdim=True)
        return att.view(att.shape[0], *enc['feat_shape'])
