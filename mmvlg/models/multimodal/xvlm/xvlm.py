"""X-VLM's multi-grained pre-training model (arXiv:2111.08276, section 3): ITC, ITM and MLM on image-text and on
region-text pairs, box prediction, and image-text retrieval through the shared protocol."""
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor, nn

from mmvlg.registry import MODELS

from ...heads.itm_head import ids_tensor, itm_pairs
from ..base import BaseVLModel
from ..retrieval import ImageTextRetrievalMixin

#: How far (in pixels of the resized image) a region box may reach past ``img_shape`` before it is an error
#: (resizing rounds); boxes within it are clipped.
BOX_TOLERANCE = 1.0


@MODELS.register_module()
class XVLM(ImageTextRetrievalMixin, BaseVLModel):
    r"""`X-VLM <https://arxiv.org/abs/2111.08276>`_: multi-grained vision-language pre-training, and image-text
    retrieval with ITC top-k re-scored by ITM.

    .. code:: text

        images ─ vision_encoder.forward_regions(boxes) ─ image tokens (B, 1+N, C_v), region tokens (R, 1+N, C_v)
                                                          + region_mask (R, 1+N): [CLS] and the patches in the box
        texts ─ language_model layers [0, fusion_layer) ─ text tokens (n, L, C)              (the text encoder)
        (visual tokens, text tokens) ─ layers [fusion_layer, end) + cross-attention ─ fused   (the cross encoder)

        image level  (image, text)            ITC: itc_head on the [CLS] of both (linear + L2 norm, gathered)
        region level (region, region text)      ITM: itm_head on the fused [CLS]; hard negatives from the ITC
                                                     similarities, positives (same image / same region) excluded
                                                MLM: masked text (mlm_head.mask) through all layers, tied decoder
        box          (full image, region text)  bbox_head on the fused [CLS]: sigmoid (cx, cy, w, h), L1 + GIoU

    One :class:`~mmvlg.models.language_models.HFTextEncoder` with ``cross_attention=dict(start=fusion_layer)``
    holds both the text and the cross encoder (BERT-base layers 0-5 and 6-11, loaded from one checkpoint); the
    cross-attention blocks start fresh (``language_model.cross_attns.*``; the configs train them, the
    projections and the ITM and box heads at 2x the learning rate, as the authors).

    A batch holds interface-2 data samples (:class:`~mmvlg.datasets.transforms.PackRegionTextInputs`): the
    image-level losses use the samples with a non-empty ``text``, the region-level ones and the box loss every
    region (``region_texts``, ``gt_instances.bboxes``) of every sample; a sample without regions is a plain
    image-text pair. Whether regions come in half of each batch (the paper) or in batches of their own (the
    authors' separate region step) is decided by the data. A region sample's whole-image caption, given both as
    ``text`` and as a region with ``region_is_image``, counts at both levels. Every loss key is present in every
    iteration (zero losses that keep the graph where a batch has nothing for a level), and the ITC gathering
    takes part on every rank, so distributed runs need no ``find_unused_parameters``.

    Loss keys: ``loss_itc``, ``loss_itm``, ``acc_itm``, ``loss_mlm``, ``acc_mlm`` (image level), the same with
    ``_region`` appended (region level, times ``region_loss_weight``), ``loss_bbox`` and ``loss_iou`` (box), and
    ``temperature`` (logged).

    Args:
        vision_encoder (dict): :class:`~mmvlg.models.backbones.XVLMViT` or
            :class:`~mmvlg.models.backbones.XVLMSwin` (``embed_dims``, ``forward``, ``forward_regions``).
        language_model (dict): :class:`~mmvlg.models.language_models.HFTextEncoder` with ``cross_attention``
            (its ``context_dims`` defaults to the vision encoder's ``embed_dims``).
        itc_head (dict, optional): :class:`~mmvlg.models.heads.ITCHead` (``img_dims``/``text_dims`` filled in);
            X-VLM: 256-d, ``pooler=dict(type='DualStreamPooler', image_pooling='cls', tanh_pooler=False,
            pool_first=True)``, ``temperature_range=(0.001, 0.5)``.
        itm_head (dict, optional): :class:`~mmvlg.models.heads.ITMHead` (``in_dims`` filled in); X-VLM:
            ``hidden_dims=2 * width``.
        mlm_head (dict, optional): :class:`~mmvlg.models.heads.MLMHead` (``in_dims``, ``vocab_size`` filled in;
            its ``masking`` is the masking rule); tied to the word embeddings when ``tie_word_embeddings``.
        bbox_head (dict, optional): :class:`~mmvlg.models.heads.BoxRegressionHead` (``in_channels`` filled in);
            X-VLM: ``mlp=dict(type='MLPBlock', hidden_dims=2 * width)``, L1 and GIoU of weight 1.
        fusion_layer (int, optional): First layer of the cross encoder. Defaults to the first layer with a
            cross-attention block.
        region_loss_weight (float): Multiplier of the region-level ITC/ITM/MLM losses. Defaults to 1.
        bbox_on_whole_image (bool): Also train the box head on the whole-image regions (``region_is_image``;
            target (0.5, 0.5, 1, 1), the paper's footnote 2). Defaults to False, as the released code
            (``calc_image_bbox_loss: False``).
        mlm_head_from_text_encoder (bool): With a pretrained ``language_model`` (``name_or_path``), initialize
            the MLM head's transform and bias from the checkpoint's own MLM head (BERT's ``cls.predictions``,
            RoBERTa's ``lm_head``), as the authors' ``BertForMaskedLM`` does. Defaults to True.
        rerank_cfg (dict, optional): Retrieval: ``k`` (ITC candidates re-scored by ITM per query; 256 for COCO,
            128 for Flickr30k in the authors' configs; 0: ITC alone), ``itm_weight`` (1.0),
            ``add_similarity`` (False: the top-k are ranked by the ITM score alone, as the authors; True: by
            ITC similarity + ``itm_weight`` x ITM score), ``batch_size`` (pairs per fused forward, 64).
        data_preprocessor (dict, optional): ``mmdet.DetDataPreprocessor``.
        init_cfg (dict, optional): Initialization config.
    """

    #: Whether the model needs one of the pre-training heads (a downstream model with heads of its own, e.g.
    #: :class:`XVLMVQA`, sets False).
    requires_pretraining_head: bool = True

    def __init__(self, vision_encoder: ConfigType, language_model: ConfigType, itc_head: OptConfigType = None,
                 itm_head: OptConfigType = None, mlm_head: OptConfigType = None, bbox_head: OptConfigType = None,
                 fusion_layer: Optional[int] = None, region_loss_weight: float = 1.0,
                 bbox_on_whole_image: bool = False, mlm_head_from_text_encoder: bool = True,
                 rerank_cfg: OptConfigType = None, data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.vision_encoder = MODELS.build(vision_encoder)
        self.vision_dims = int(self.vision_encoder.embed_dims)
        language_model = dict(language_model)
        if not language_model.get('cross_attention'):
            raise ValueError('XVLM: model.language_model needs cross_attention=dict(start=...) (the cross encoder)')
        language_model['cross_attention'] = dict(dict(context_dims=self.vision_dims),
                                                 **language_model['cross_attention'])
        self.language_model = MODELS.build(language_model)
        lm = self.language_model
        self.text_dims = lm.embed_dims
        layers = lm.cross_attention_layers
        self.fusion_layer = layers[0] if fusion_layer is None else fusion_layer
        if any(i < self.fusion_layer for i in layers) or self.fusion_layer not in layers:
            raise ValueError(f'XVLM: fusion_layer={self.fusion_layer} must be the first layer with cross-attention '
                             f'(model.language_model.cross_attention layers: {layers})')
        self.itc_head = self.itm_head = self.mlm_head = self.bbox_head = None
        if itc_head is not None:
            self.itc_head = MODELS.build(dict(dict(img_dims=self.vision_dims, text_dims=self.text_dims), **itc_head))
        if itm_head is not None:
            self.itm_head = MODELS.build(dict(dict(in_dims=self.text_dims), **itm_head))
        if mlm_head is not None:
            self.mlm_head = MODELS.build(dict(dict(in_dims=self.text_dims, vocab_size=len(self.tokenizer)),
                                              **mlm_head))
            if self.mlm_head.tie_word_embeddings:
                self.mlm_head.tie_weights(lm.word_embeddings)
        if bbox_head is not None:
            self.bbox_head = MODELS.build(dict(dict(in_channels=self.text_dims), **bbox_head))
        if self.requires_pretraining_head and all(
                h is None for h in (self.itc_head, self.itm_head, self.mlm_head, self.bbox_head)):
            raise ValueError('XVLM: give at least one of itc_head, itm_head, mlm_head and bbox_head')
        self.region_loss_weight = float(region_loss_weight)
        self.bbox_on_whole_image = bool(bbox_on_whole_image)
        self.mlm_head_from_text_encoder = mlm_head_from_text_encoder
        self.rerank_cfg = dict(dict(k=0, itm_weight=1.0, add_similarity=False, batch_size=64), **(rerank_cfg or {}))

    def init_weights(self) -> None:
        """Initialize the parts; with ``mlm_head_from_text_encoder``, copy the pretrained text checkpoint's MLM
        prediction head into :attr:`mlm_head` afterwards."""
        super().init_weights()
        lm = self.language_model
        if (self.mlm_head is not None and self.mlm_head_from_text_encoder and lm.name_or_path is not None
                and lm.pretrained_weights):
            self.mlm_head.load_hf_prediction_head(lm.name_or_path)

    # ---------------------------------------------------------------------------------------- encoders
    def encode_text(self, tokens: Dict[str, Tensor]) -> Tensor:
        """The text encoder: (n, L, C) outputs of layers ``[0, fusion_layer)`` for :meth:`tokenize`'s output."""
        lm = self.language_model
        return lm.forward_layers(lm.embed(tokens['input_ids']), tokens['attention_mask'], 0, self.fusion_layer)

    def cross_encode(self, text_tokens: Tensor, attention_mask: Tensor, visual: Tensor,
                     visual_mask: Optional[Tensor] = None) -> Tensor:
        """The cross encoder: layers ``[fusion_layer, end)`` with cross-attention to visual tokens.

        Args:
            text_tokens (Tensor): (n, L, C) text-encoder outputs.
            attention_mask (Tensor): (n, L) 1 at real tokens.
            visual (Tensor): (n, 1+N, C_v) image or region tokens.
            visual_mask (Tensor, optional): (n, 1+N) bool, True where the text may attend (a region's
                ``region_mask``); None: every token.

        Returns:
            Tensor: (n, L, C); token 0 is the fused [CLS].
        """
        return self.language_model.forward_layers(text_tokens, attention_mask, self.fusion_layer,
                                                  context=visual, context_mask=visual_mask)

    def extract_visual(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """One pass of the vision encoder over the batch and its regions.

        Returns:
            dict: ``image`` (B, 1+N, C_v); with regions, ``region`` (R, 1+N, C_v), ``region_mask`` (R, 1+N),
            ``boxes`` (R, 4) normalized x1, y1, x2, y2 of the valid image, ``image_index`` (R,), ``texts``
            (R strings), ``is_image`` (R,) bool and ``ids`` (R,) region ids (equal for the same text of the same
            image).
        """
        regions = self.collect_regions(data_samples, inputs.device)
        if regions is None:
            return dict(image=self.vision_encoder(inputs))
        valid_hw = torch.tensor([list(ds.img_shape[:2]) for ds in data_samples], device=inputs.device)
        padded = bool((valid_hw != torch.tensor(inputs.shape[-2:], device=inputs.device)).any())
        out = self.vision_encoder.forward_regions(inputs, regions['boxes'], regions['image_index'],
                                                  valid_hw=valid_hw if padded else None)
        return dict(regions, **out)

    @staticmethod
    def collect_regions(data_samples: SampleList, device=None) -> Optional[Dict]:
        """The regions of a batch, flattened in sample order (None when there is none).

        Raises:
            ValueError: Naming the sample's ``img_id``: region texts, flags and boxes disagree in number, an empty
                region text, or a box outside ``img_shape`` (by more than :data:`BOX_TOLERANCE` pixels) or of
                zero area.
        """
        boxes, index, texts, is_image, ids = [], [], [], [], []
        for b, ds in enumerate(data_samples):
            gt = ds.gt_instances if 'gt_instances' in ds else None
            box = gt.bboxes if gt is not None and 'bboxes' in gt else torch.zeros(0, 4)
            box = (box.tensor if hasattr(box, 'tensor') else torch.as_tensor(box)).float().reshape(-1, 4)
            names = list(ds.metainfo.get('region_texts', []))
            flags = list(ds.metainfo.get('region_is_image', [False] * len(names)))
            where = f'image {ds.metainfo.get("img_id")!r} ({ds.metainfo.get("img_path", "no path")})'
            if not len(names) == len(flags) == len(box):
                raise ValueError(f'XVLM: {where} has {len(names)} region_texts, {len(flags)} region_is_image flags '
                                 f'and {len(box)} boxes')
            if not len(box):
                continue
            h, w = ds.img_shape[:2]
            for j, (text, xyxy) in enumerate(zip(names, box.tolist())):
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(f'XVLM: region {j} of {where} has an empty text {text!r}')
                x1, y1, x2, y2 = xyxy
                if (min(x1, y1) < -BOX_TOLERANCE or x2 > w + BOX_TOLERANCE or y2 > h + BOX_TOLERANCE
                        or min(x2, w) - max(x1, 0) <= 0 or min(y2, h) - max(y1, 0) <= 0):
                    raise ValueError(f'XVLM: region {j} ({text!r}) of {where} has the box {xyxy} (x1, y1, x2, y2 '
                                     f'px), outside its image of {w}x{h} px or of zero area')
            scale = box.new_tensor([w, h, w, h])
            boxes.append((box / scale).clamp(0, 1))
            index += [b] * len(box)
            texts += names
            is_image += [bool(f) for f in flags]
            key = str(ds.metainfo.get('img_id', ds.metainfo.get('img_path', b)))
            ids += [zlib.crc32(f'{key}\x00{t}'.encode()) for t in names]
        if not boxes:
            return None
        return dict(boxes=torch.cat(boxes).to(device), image_index=torch.tensor(index, device=device),
                    texts=texts, is_image=torch.tensor(is_image, dtype=torch.bool, device=device),
                    ids=torch.tensor(ids, dtype=torch.long, device=device))

    # ------------------------------------------------------------------------------------------ losses
    #: The ITM batch (positives, then hard negatives): :func:`mmvlg.models.heads.itm_pairs`.
    itm_pairs = staticmethod(itm_pairs)

    @staticmethod
    def _zero(*modules: Optional[nn.Module]) -> Tensor:
        """0, connected to every parameter of ``modules`` (keeps the loss keys and the DDP graph constant)."""
        params = [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]
        return sum(p.sum() * 0.0 for p in params) if params else torch.zeros(())

    def encode_for_loss(self, texts: Sequence[str], device=None) -> Tuple[Dict[str, Tensor], Optional[Tensor]]:
        """Tokenize ``texts`` and run the text encoder (when ITC or ITM need it): (tokens, (n, L, C) or None)."""
        tok = self.tokenize(list(texts), device)
        need = self.itc_head is not None or self.itm_head is not None or self.bbox_head is not None
        return tok, self.encode_text(tok) if need else None

    def pair_losses(self, visual: Tensor, visual_mask: Optional[Tensor], texts: Sequence[str], ids: Tensor,
                    encoded: Optional[Tuple[Dict[str, Tensor], Optional[Tensor]]] = None) -> Dict[str, Tensor]:
        """ITC, ITM and MLM on n (visual, text) pairs (the image level or the region level).

        Args:
            visual (Tensor): (n, 1+N, C_v) the tokens of each pair's image or region.
            visual_mask (Tensor, optional): (n, 1+N) bool, what each text may attend to (None: all).
            texts (list[str]): n texts.
            ids (Tensor): (n,) long; pairs with equal ids are positives of each other (excluded from the ITM
                negatives, targets of each other in ITC).
            encoded (tuple, optional): :meth:`encode_for_loss` of ``texts`` when already computed.

        Returns:
            dict: ``loss_itc``, ``loss_itm``, ``acc_itm``, ``loss_mlm``, ``acc_mlm`` (for the heads that exist);
            zero losses when n is 0.
        """
        lm = self.language_model
        losses: Dict[str, Tensor] = {}
        n = len(texts)
        if n == 0:
            if self.itc_head is not None:  # an empty ITC still takes part in the gathering of the other ranks
                empty = visual.new_zeros((0, self.itc_head.embed_dims))
                losses['loss_itc'] = self.itc_head.loss(empty, empty, ids)[0]['loss_itc'] + self._zero(self.itc_head)
            if self.itm_head is not None:
                losses.update(loss_itm=self._zero(self.itm_head), acc_itm=visual.new_zeros(()))
            if self.mlm_head is not None:
                losses.update(loss_mlm=self._zero(self.mlm_head), acc_mlm=visual.new_zeros(()))
            return losses
        tok, text = encoded if encoded is not None else self.encode_for_loss(texts, visual.device)
        sim = None
        if self.itc_head is not None:
            img_emb = self.itc_head.embed_image(visual)
            text_emb = self.itc_head.embed_text(text, tok['attention_mask'].bool())
            itc, sim = self.itc_head.loss(img_emb, text_emb, ids)
            losses.update(itc)
        if self.itm_head is not None:
            img_idx, text_idx, labels = self.itm_pairs(sim, ids)
            fused = self.cross_encode(text[text_idx], tok['attention_mask'][text_idx], visual[img_idx],
                                      visual_mask[img_idx] if visual_mask is not None else None)
            losses.update(self.itm_head.loss(fused[:, 0], labels))
        if self.mlm_head is not None:
            masked, mlm_labels = self.mlm_head.mask(tok['input_ids'], tok['attention_mask'], self.tokenizer)
            hidden = lm.forward_layers(lm.embed(masked), tok['attention_mask'], 0, self.fusion_layer)
            fused = self.cross_encode(hidden, tok['attention_mask'], visual, visual_mask)
            losses.update(self.mlm_head.loss(fused, mlm_labels))
        return losses

    def box_losses(self, image: Tensor, regions: Optional[Dict],
                   encoded: Optional[Tuple[Dict[str, Tensor], Optional[Tensor]]] = None) -> Dict[str, Tensor]:
        """``loss_bbox`` (L1) and ``loss_iou`` (GIoU) of the box head on the cross [CLS] of (full image, region
        text), averaged over the boxes that count (the whole-image regions only with ``bbox_on_whole_image``).

        Args:
            image (Tensor): (B, 1+N, C_v) full-image tokens.
            regions (dict, optional): :meth:`collect_regions` (None: zero losses).
            encoded (tuple, optional): :meth:`encode_for_loss` of the region texts when already computed.
        """
        if regions is None:
            zero = self._zero(self.bbox_head)
            return dict(loss_bbox=zero, loss_iou=zero.clone())
        tok, text = encoded if encoded is not None else self.encode_for_loss(regions['texts'], image.device)
        fused = self.cross_encode(text, tok['attention_mask'], image[regions['image_index']])
        weights = None if self.bbox_on_whole_image else (~regions['is_image']).float()
        return self.bbox_head.loss_by_boxes(fused[:, 0], regions['boxes'], weights)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """The pre-training losses of a batch of interface-2 samples (see the class docstring).

        Args:
            inputs (Tensor): (B, 3, H, W) preprocessed images.
            data_samples (list[DetDataSample]): ``text``, ``img_id``, ``region_texts``, ``region_is_image``,
                ``gt_instances.bboxes`` (n_regions, 4) px of ``img_shape``.

        Returns:
            dict: The losses and logged values.
        """
        device = inputs.device
        for ds in data_samples:
            if not (ds.metainfo.get('text') or '').strip() and not ds.metainfo.get('region_texts'):
                raise ValueError(f'XVLM: image {ds.metainfo.get("img_id")!r} ({ds.metainfo.get("img_path")}) has '
                                 'neither a text nor regions')
        visual = self.extract_visual(inputs, data_samples)
        image = visual['image']
        keep = [b for b, ds in enumerate(data_samples) if (ds.metainfo.get('text') or '').strip()]
        keep_t = torch.tensor(keep, dtype=torch.long, device=device)
        img_ids = ids_tensor([data_samples[b] for b in keep], device=device)
        losses = self.pair_losses(image[keep_t], None, [data_samples[b].text for b in keep], img_ids)
        encoded = None
        if 'region' in visual:
            encoded = self.encode_for_loss(visual['texts'], device)
            region = self.pair_losses(visual['region'], visual['region_mask'], visual['texts'], visual['ids'],
                                      encoded)
        else:
            region = self.pair_losses(image[:0], None, [], torch.zeros(0, dtype=torch.long, device=device))
        for k, v in region.items():
            losses[f'{k}_region'] = v * self.region_loss_weight if k.startswith('loss') else v
        if self.bbox_head is not None:
            losses.update(self.box_losses(image, visual if 'region' in visual else None, encoded))
        if self.itc_head is not None:
            losses['temperature'] = self.itc_head.temperature.detach().clone()
        return losses

    # -------------------------------------------------------------------------------------- inference
    def _forward(self, inputs: Tensor, data_samples: SampleList = None) -> Tuple[Tensor, Tensor]:
        """Image tokens (B, 1+N, C_v) and the cross encoder's outputs (B, L, C) for each sample's ``text``."""
        image = self.vision_encoder(inputs)
        tok = self.tokenize([ds.text for ds in data_samples], inputs.device)
        return image, self.cross_encode(self.encode_text(tok), tok['attention_mask'], image)

    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        """ITC embeddings: each sample gets ``img_embed`` and ``text_embed`` (D,), L2-normalized, for
        :class:`~mmvlg.evaluation.RetrievalRecallMetric` (:class:`~mmvlg.engine.RetrievalValLoop` ranks with
        :meth:`encode_batch` and :meth:`score_pairs` instead)."""
        img_feats, text_feats = self.encode_batch(inputs, data_samples)
        for ds, i, t in zip(data_samples, img_feats['embed'], text_feats['embed']):
            ds.set_field(i.detach(), 'img_embed')
            ds.set_field(t.detach(), 'text_embed')
        return data_samples

    # ----------------------------------------------------------- the retrieval protocol (RetrievalValLoop)
    @property
    def retrieval_cfg(self) -> Dict:
        """``rerank_cfg`` in the protocol's names: ``k``, ``weight`` (= ``itm_weight``), ``batch_size``."""
        return dict(k=self.rerank_cfg['k'], weight=self.rerank_cfg['itm_weight'],
                    batch_size=self.rerank_cfg['batch_size'])

    def _need_itc(self) -> None:
        if self.itc_head is None:
            raise RuntimeError('XVLM: retrieval needs an itc_head (the ITC embeddings rank the gallery)')

    @torch.no_grad()
    def encode_images(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """``embed`` (B, D) ITC image embeddings and ``tokens`` (B, 1+N, C_v), what the cross encoder reads."""
        self._need_itc()
        image = self.vision_encoder(inputs)
        return dict(embed=self.itc_head.embed_image(image), tokens=image)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], device=None) -> Dict[str, Tensor]:
        """``embed`` (n, D) ITC text embeddings, ``tokens`` (n, L, C) text-encoder outputs and
        ``attention_mask`` (n, L)."""
        self._need_itc()
        tok = self.tokenize(list(texts), device)
        text = self.encode_text(tok)
        return dict(embed=self.itc_head.embed_text(text, tok['attention_mask'].bool()), tokens=text,
                    attention_mask=tok['attention_mask'])

    @torch.no_grad()
    def score_pairs(self, image_feats: Dict[str, Tensor], text_feats: Dict[str, Tensor]) -> Tensor:
        """(n,) re-scoring of n row-aligned pairs from the cache: the ITM match logit of the cross encoder.

        :func:`~mmvlg.models.multimodal.retrieval.rescore_topk` ranks the top-k by ``similarity + itm_weight x
        score``; without ``add_similarity`` the score returned is ``logit - similarity / itm_weight``, so that the
        top-k are ranked by ``itm_weight x logit`` alone, as the authors rank them.
        """
        if self.itm_head is None:
            raise RuntimeError('XVLM: ITM re-scoring needs an itm_head (or set rerank_cfg.k=0)')
        fused = self.cross_encode(text_feats['tokens'], text_feats['attention_mask'], image_feats['tokens'])
        logit = self.itm_head.score(fused[:, 0]).float()
        if self.rerank_cfg['add_similarity']:
            return logit
        sim = (image_feats['embed'].float() * text_feats['embed'].float()).sum(dim=-1)
        return logit - sim / float(self.rerank_cfg['itm_weight'])


__all__: List[str] = ['XVLM']
