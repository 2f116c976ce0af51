"""FIBER's coarse-grained models (arXiv:2206.07643, sections 3.2 and 3.3): image-text pre-training (ITC, ITM,
MLM), image-text retrieval (dual encoder with ITM re-ranking) and VQA."""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor

from mmvlg.registry import MODELS

from ...heads.itm_head import ids_tensor, itm_pairs
from ...layers.cross_modal_pooler import CrossModalPooler
from ...utils.mlm_masking import mask_tokens
from ..base import BaseVLModel
from ..retrieval import ImageTextRetrievalMixin, rescore_topk


class FIBERCoarseBase(BaseVLModel):
    """The FIBER backbone run at image level: the tokens of the last Swin stage and the text tokens.

    Args:
        backbone (dict): :class:`~mmvlg.models.backbones.FIBERBackbone`; its Swin's last ``out_indices`` entry
            is the stage whose tokens the heads read (3, the last stage, in FIBER).
        data_preprocessor (dict): e.g. ``mmdet.DetDataPreprocessor`` (normalization, padding).
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self, backbone: ConfigType, data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.img_dims = self.backbone.out_channels[-1]
        self.text_dims = self.backbone.text_dims

    def encode(self, inputs: Tensor, tokens: Dict[str, Tensor], padding_mask: Optional[Tensor], fusion: bool
               ) -> Tuple[Tensor, Optional[Tensor], Dict[str, Tensor]]:
        """Run the backbone.

        Returns:
            tuple: image tokens (bs, N, C_i) of the last output stage, their validity (bs, N) bool (None when
            nothing is padded) and the text dict of the backbone (``embeds`` (bs, L, C_t), ``mask``, ...).
        """
        feats, text = self.backbone(inputs, None, padding_mask, fusion=fusion, tokens=tokens)
        x = feats[-1]
        img_tokens = x.flatten(2).transpose(1, 2)
        valid = None
        if padding_mask is not None and padding_mask.any():
            valid = ~F.interpolate(padding_mask[None].float(), size=x.shape[-2:])[0].bool().flatten(1)
            valid[~valid.any(dim=1)] = True  # an image entirely padded at this scale: use every position
        return img_tokens, valid, text

    @staticmethod
    def select(tokens: Dict[str, Tensor], index: Tensor) -> Dict[str, Tensor]:
        return {k: v[index] for k, v in tokens.items()}

    def _forward(self, inputs: Tensor, data_samples: SampleList = None):
        """Raw backbone outputs with fusion: image tokens (bs, N, C_i) and text tokens (bs, L, C_t)."""
        tok = self.tokenize([ds.text for ds in data_samples], inputs.device)
        img_tokens, _, text = self.encode(inputs, tok, self.padding_mask(inputs, data_samples), fusion=True)
        return img_tokens, text['embeds']


@MODELS.register_module()
class FIBERCoarse(ImageTextRetrievalMixin, FIBERCoarseBase):
    r"""`FIBER <https://arxiv.org/abs/2206.07643>`_'s coarse-grained model: image-text pre-training with ITC,
    ITM and MLM (section 3.2) and image-text retrieval (section 3.3).

    .. code:: text

        loss:     images, captions ─ backbone, fusion OFF ─ itc_head ─ loss_itc ─ similarities (bs, bs)
                                                                                          │ hard negatives
                  (pos pairs + text negs + image negs) ─ backbone, fusion ON ─ pooler ─ itm_head ─ loss_itm
                  images, masked captions (15%, 80/10/10) ─ backbone, fusion ON ─ pooler.text ─ mlm_head ─ loss_mlm
        predict:  images, captions ─ backbone, fusion OFF ─ itc_head ─ img_embed, text_embed per sample
                  (RetrievalRecallMetric ranks them; :meth:`rerank` adds ITM scores of the top-k)

    ITM follows the authors (VLMo-style global hard negatives): for each of the bs pairs, one text negative per
    image and one image negative per text, drawn from the (detached) ITC similarities with the positives
    excluded (:func:`~mmvlg.models.heads.sample_hard_negatives`); without an ITC head they are drawn uniformly.
    Pairs with the same ``img_id`` count as positives of each other. Every head is optional: pre-training uses
    the three, retrieval fine-tuning ITC (+ ITM for re-ranking). Loss weights are the heads' ``loss_weight``.

    Args:
        backbone (dict): :class:`~mmvlg.models.backbones.FIBERBackbone`.
        itc_head (dict, optional): :class:`~mmvlg.models.heads.ITCHead` (``img_dims``/``text_dims`` filled in).
        itm_head (dict, optional): :class:`~mmvlg.models.heads.ITMHead` (``in_dims`` filled in).
        mlm_head (dict, optional): :class:`~mmvlg.models.heads.MLMHead` (``in_dims``, ``vocab_size`` filled in).
        embed_dims (int): Width of the fused features (the pooler's projections; 768 in FIBER).
        mlm_cfg (dict, optional): ``mask_prob`` (0.15), ``replace_prob`` (0.8), ``random_prob`` (0.1).
        rerank_cfg (dict, optional): ``k`` (top-k re-ranked by ITM, 0: none), ``itm_weight`` (1.0),
            ``batch_size`` (pairs per fused forward, 64).
        data_preprocessor (dict): ``mmdet.DetDataPreprocessor``.
    """

    def __init__(self, backbone: ConfigType, itc_head: OptConfigType = None, itm_head: OptConfigType = None,
                 mlm_head: OptConfigType = None, embed_dims: int = 768, mlm_cfg: OptConfigType = None,
                 rerank_cfg: OptConfigType = None, data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(backbone, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if itc_head is None and itm_head is None and mlm_head is None:
            raise ValueError('FIBERCoarse: give at least one of itc_head, itm_head and mlm_head')
        self.itc_head = self.itm_head = self.mlm_head = self.pooler = None
        if itc_head is not None:
            self.itc_head = MODELS.build(dict(dict(img_dims=self.img_dims, text_dims=self.text_dims), **itc_head))
        if itm_head is not None or mlm_head is not None:
            self.pooler = CrossModalPooler(self.img_dims, self.text_dims, embed_dims)
        if itm_head is not None:
            self.itm_head = MODELS.build(dict(dict(in_dims=2 * embed_dims), **itm_head))
        if mlm_head is not None:
            self.mlm_head = MODELS.build(dict(dict(in_dims=embed_dims, vocab_size=len(self.tokenizer)), **mlm_head))
        self.mlm_cfg = dict(dict(mask_prob=0.15, replace_prob=0.8, random_prob=0.1), **(mlm_cfg or {}))
        self.rerank_cfg = dict(dict(k=0, itm_weight=1.0, batch_size=64), **(rerank_cfg or {}))

    # ------------------------------------------------------------------------------------------ losses
    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        device = inputs.device
        tok = self.tokenize([ds.text for ds in data_samples], device)
        pad = self.padding_mask(inputs, data_samples)
        img_ids = ids_tensor(data_samples, device=device)
        losses: Dict[str, Tensor] = {}
        sim = None
        if self.itc_head is not None:
            img_tokens, valid, text = self.encode(inputs, tok, pad, fusion=False)
            img_emb, text_emb = self.itc_head(img_tokens, valid, text['embeds'])
            itc_losses, sim = self.itc_head.loss(img_emb, text_emb, img_ids)
            losses.update(itc_losses)
            losses['temperature'] = self.itc_head.temperature.detach().clone()
        if self.itm_head is not None:
            img_idx, text_idx, labels = self.itm_pairs(sim, img_ids)
            img_tokens, valid, text = self.encode(inputs[img_idx], self.select(tok, text_idx), pad[img_idx],
                                                  fusion=True)
            losses.update(self.itm_head.loss(self.pooler(img_tokens, valid, text['embeds'])['cls'], labels))
        if self.mlm_head is not None:
            tokenizer = self.tokenizer
            masked, mlm_labels = mask_tokens(
                tok['input_ids'], tok['attention_mask'], tokenizer.mask_token_id, tokenizer.all_special_ids,
                len(tokenizer), **self.mlm_cfg)
            img_tokens, valid, text = self.encode(inputs, dict(tok, input_ids=masked), pad, fusion=True)
            losses.update(self.mlm_head.loss(self.pooler(img_tokens, valid, text['embeds'])['text'], mlm_labels))
        return losses

    #: The ITM batch (positives, then hard negatives): :func:`mmvlg.models.heads.itm_pairs`.
    itm_pairs = staticmethod(itm_pairs)

    # -------------------------------------------------------------------------------------- retrieval
    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        """Dual-encoder embeddings (fusion off): each sample gets ``img_embed`` and ``text_embed`` (D,),
        L2-normalized, for :class:`~mmvlg.evaluation.RetrievalRecallMetric`."""
        if self.itc_head is None:
            raise RuntimeError('FIBERCoarse.predict needs an itc_head (dual-encoder retrieval)')
        tok = self.tokenize([ds.text for ds in data_samples], inputs.device)
        img_tokens, valid, text = self.encode(inputs, tok, self.padding_mask(inputs, data_samples), fusion=False)
        img_emb, text_emb = self.itc_head(img_tokens, valid, text['embeds'])
        for ds, i, t in zip(data_samples, img_emb, text_emb):
            ds.set_field(i.detach(), 'img_embed')
            ds.set_field(t.detach(), 'text_embed')
        return data_samples

    @torch.no_grad()
    def itm_scores(self, inputs: Tensor, padding_mask: Optional[Tensor], texts: Sequence[str]) -> Tensor:
        """(n,) ITM match scores of n (image, text) pairs (fusion on), in chunks of ``rerank_cfg.batch_size``."""
        if self.itm_head is None:
            raise RuntimeError('FIBERCoarse: ITM scores need an itm_head')
        scores = []
        step = self.rerank_cfg['batch_size']
        for s in range(0, len(texts), step):
            tok = self.tokenize(texts[s:s + step], inputs.device)
            pad = padding_mask[s:s + step] if padding_mask is not None else None
            img_tokens, valid, text = self.encode(inputs[s:s + step], tok, pad, fusion=True)
            scores.append(self.itm_head.score(self.pooler(img_tokens, valid, text['embeds'])['cls']))
        return torch.cat(scores) if scores else inputs.new_zeros(0)

    @torch.no_grad()
    def rerank(self, sim: Tensor, images: Tensor, texts: Sequence[str], image_padding: Optional[Tensor] = None,
               k: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        """Re-rank the dual encoder's top-k by the fusion encoder (the paper's Table 4), for a gallery given as
        preprocessed images and texts: for every query, its k best candidates get
        ``sim + itm_weight * ITM score`` and rank before all the others, which keep their dual-encoder order
        (:func:`~mmvlg.models.multimodal.retrieval.rescore_topk`).

        Args:
            sim (Tensor): (n_img, n_text) dual-encoder similarities.
            images (Tensor): (n_img, 3, H, W) preprocessed images, row i of ``sim``.
            texts (list[str]): n_text texts, column j of ``sim``.
            image_padding (Tensor, optional): (n_img, H, W) bool padding masks.
            k (int, optional): Candidates re-ranked per query. Defaults to ``rerank_cfg.k``.

        Returns:
            tuple: (n_img, n_text) image-to-text (text retrieval) and text-to-image (image retrieval) scores.
        """
        k = self.rerank_cfg['k'] if k is None else k

        def score_fn(img: Tensor, txt: Tensor) -> Tensor:
            img = img.to(images.device)
            return self.itm_scores(images[img], image_padding[img] if image_padding is not None else None,
                                   [texts[j] for j in txt.tolist()])

        return rescore_topk(sim, score_fn, k, self.rerank_cfg['itm_weight'])

    # ----------------------------------------------------------- the retrieval protocol (RetrievalValLoop)
    @property
    def retrieval_cfg(self) -> Dict:
        """``rerank_cfg`` in the protocol's names: ``k``, ``weight`` (= ``itm_weight``), ``batch_size``."""
        return dict(k=self.rerank_cfg['k'], weight=self.rerank_cfg['itm_weight'],
                    batch_size=self.rerank_cfg['batch_size'])

    @torch.no_grad()
    def encode_batch(self, inputs: Tensor, data_samples: SampleList) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """One dual-encoder forward (fusion off) for the images and the texts of a batch.

        FIBER fuses inside its backbone, so what its ITM re-scoring needs of an image is the preprocessed image
        itself: the cache holds it (float16, with its padding mask) and the text's token ids.

        Returns:
            tuple: image features ``embed`` (bs, D), ``pixels`` (bs, 3, H, W) float16, ``padding_mask``
            (bs, H, W); text features ``embed`` (bs, D), ``input_ids``, ``attention_mask`` (bs, L), ``offsets``
            (bs, L, 2).
        """
        if self.itc_head is None:
            raise RuntimeError('FIBERCoarse: retrieval needs an itc_head (dual encoder)')
        tok = self.tokenize([ds.text for ds in data_samples], inputs.device)
        pad = self.padding_mask(inputs, data_samples)
        img_tokens, valid, text = self.encode(inputs, tok, pad, fusion=False)
        img_emb, text_emb = self.itc_head(img_tokens, valid, text['embeds'])
        return (dict(embed=img_emb, pixels=inputs.half(), padding_mask=pad),
                dict(embed=text_emb, input_ids=tok['input_ids'], attention_mask=tok['attention_mask'],
                     offsets=tok['offsets']))

    def encode_images(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        return self.encode_batch(inputs, data_samples)[0]

    def encode_texts(self, texts: Sequence[str], device=None) -> Dict[str, Tensor]:
        raise NotImplementedError('FIBERCoarse encodes texts with their images: use encode_batch')

    @torch.no_grad()
    def score_pairs(self, image_feats: Dict[str, Tensor], text_feats: Dict[str, Tensor]) -> Tensor:
        """(n,) ITM scores of n row-aligned (image, text) pairs from the cache (fusion on)."""
        if self.itm_head is None:
            raise RuntimeError('FIBERCoarse: ITM re-scoring needs an itm_head (or set rerank_cfg.k=0)')
        dtype = next(self.parameters()).dtype
        tok = {k: text_feats[k] for k in ('input_ids', 'attention_mask', 'offsets')}
        img_tokens, valid, text = self.encode(image_feats['pixels'].to(dtype), tok, image_feats['padding_mask'],
                                              fusion=True)
        return self.itm_head.score(self.pooler(img_tokens, valid, text['embeds'])['cls'])


@MODELS.register_module()
class FIBERVQA(FIBERCoarseBase):
    """FIBER for VQA (section 3.3): the fusion encoder's pooled text and image features, concatenated, through
    :class:`~mmvlg.models.heads.VQAHead`.

    The question is the sample's ``text``; training targets are the metainfo ``answer_labels`` (indices into
    the head's answer vocabulary) and ``answer_scores`` (soft scores); ``predict`` sets ``pred_answer``,
    ``pred_answer_label`` and ``pred_answer_score`` for :class:`~mmvlg.evaluation.VQAAccuracy`.

    Args:
        backbone (dict): :class:`~mmvlg.models.backbones.FIBERBackbone`.
        vqa_head (dict): :class:`~mmvlg.models.heads.VQAHead` (``in_dims`` filled in).
        embed_dims (int): Width of the pooled features of each modality (768 in FIBER).
        data_preprocessor (dict): ``mmdet.DetDataPreprocessor``.
    """

    def __init__(self, backbone: ConfigType, vqa_head: ConfigType, embed_dims: int = 768,
                 data_preprocessor: OptConfigType = None, init_cfg: OptMultiConfig = None) -> None:
        super().__init__(backbone, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.pooler = CrossModalPooler(self.img_dims, self.text_dims, embed_dims)
        self.vqa_head = MODELS.build(dict(dict(in_dims=2 * embed_dims), **vqa_head))

    def _forward(self, inputs: Tensor, data_samples: SampleList = None) -> Tensor:
        """The answer logits (bs, num_answers)."""
        return self.vqa_head(self.fused_cls(inputs, data_samples))

    def fused_cls(self, inputs: Tensor, data_samples: SampleList) -> Tensor:
        """(bs, 2 * embed_dims) ``[text_cls; image_cls]`` of the fusion encoder."""
        tok = self.tokenize([ds.text for ds in data_samples], inputs.device)
        img_tokens, valid, text = self.encode(inputs, tok, self.padding_mask(inputs, data_samples), fusion=True)
        return self.pooler(img_tokens, valid, text['embeds'])['cls']

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        for ds in data_samples:
            if 'answer_labels' not in ds.metainfo or 'answer_scores' not in ds.metainfo:
                raise KeyError(f'FIBERVQA: training sample {ds.metainfo.get("question_id", ds.metainfo.get("img_id"))}'
                               ' has no answer_labels/answer_scores')
        target = self.vqa_head.targets([ds.answer_labels for ds in data_samples],
                                       [ds.answer_scores for ds in data_samples], inputs.device)
        return self.vqa_head.loss(self.fused_cls(inputs, data_samples), target)

    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        pred = self.vqa_head.predict(self.fused_cls(inputs, data_samples))
        for b, ds in enumerate(data_samples):
            ds.set_metainfo(dict(pred_answer=pred['answers'][b]))
            ds.set_field(pred['labels'][b], 'pred_answer_label')
            ds.set_field(pred['scores'][b], 'pred_answer_score')
        return data_samples

