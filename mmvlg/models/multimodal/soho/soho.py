"""SOHO's pre-training model (arXiv:2104.03135, sections 3-4): a CNN, a visual dictionary and a single-stream
transformer over text and visual tokens, trained with MLM, MVM and ITM."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor

from mmvlg.registry import MODELS

from ...heads.itm_head import ids_tensor
from ..base import BaseVLModel
from ..retrieval import ImageTextRetrievalMixin, collate_cached

NEGATIVE_RULES = ('binomial', 'exact', 'all')
MVM_CHOICES = ('pair', 'batch')
LOSSES = ('mlm', 'mvm', 'itm')


def sample_itm_texts(img_ids: Tensor, texts_per_image: int = 4, rule: str = 'binomial', neg_prob: float = 0.5,
                     num_negatives: int = 2, generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
    """The texts paired with each image of a batch of (image, caption) samples for ITM (and MLM/MVM).

    Each image gets ``texts_per_image`` slots; a slot is a negative (a caption of another image of the batch,
    uniformly among the samples with another ``img_id``) or a positive (a caption of this image: uniformly among
    the samples with the same ``img_id``, itself included). Which slots are negatives:

    * ``'binomial'`` (the released code): each slot with probability ``neg_prob`` (Binomial(4, 0.5) negatives);
    * ``'exact'`` (the paper: "two positive pairs and two negative pairs"): ``num_negatives`` random slots.
    * ``'all'`` (the paper's retrieval fine-tuning, section 4.2.1: "all the other t - 1 captions are used as the
      unaligned captions for each image"): every image with every caption of the batch, ``texts_per_image`` is
      then B; a caption of the same ``img_id`` is a positive.

    A slot meant to be negative stays positive when the batch has no caption of another image.

    Args:
        img_ids (Tensor): (B,) long ids; equal ids show the same image (:func:`~mmvlg.models.heads.ids_tensor`).
        texts_per_image (int): Slots per image. Defaults to 4.
        rule (str): ``'binomial'`` or ``'exact'``. Defaults to ``'binomial'``.
        neg_prob (float): The negative probability of ``'binomial'``. Defaults to 0.5.
        num_negatives (int): The negatives per image of ``'exact'``. Defaults to 2.
        generator (torch.Generator, optional): A CPU random generator.

    Returns:
        tuple: ``text_index`` (B * texts_per_image,) long, the sample whose caption fills each slot (slots of
        image b at ``b * texts_per_image ...``; B * B for ``'all'``), and ``labels`` of the same shape, long, 1
        for a match.
    """
    if rule not in NEGATIVE_RULES:
        raise ValueError(f'sample_itm_texts: rule must be one of {NEGATIVE_RULES}, got {rule!r}')
    if rule == 'exact' and not 0 <= num_negatives <= texts_per_image:
        raise ValueError(f'sample_itm_texts: num_negatives={num_negatives} outside [0, {texts_per_image}]')
    ids = img_ids.cpu()
    bs, t = len(ids), int(texts_per_image)
    same = ids[:, None] == ids[None, :]
    if rule == 'all':
        return (torch.arange(bs).repeat(bs).to(img_ids.device), same.long().flatten().to(img_ids.device))
    if rule == 'binomial':
        want_neg = torch.rand(bs, t, generator=generator) < neg_prob
    else:
        order = torch.rand(bs, t, generator=generator).argsort(dim=1)
        want_neg = order < num_negatives
    # a uniform draw among the allowed columns: the argmax of random scores restricted to them
    u_pos = torch.rand(bs, t, bs, generator=generator).masked_fill(~same[:, None], -1.0)
    u_neg = torch.rand(bs, t, bs, generator=generator).masked_fill(same[:, None], -1.0)
    has_neg = (~same).any(dim=1)[:, None].expand(bs, t)
    neg = want_neg & has_neg
    index = torch.where(neg, u_neg.argmax(dim=2), u_pos.argmax(dim=2))
    return index.flatten().to(img_ids.device), (~neg).long().flatten().to(img_ids.device)


def sample_mvm_mask(indices: Tensor, mask_prob: float = 0.015, generator: Optional[torch.Generator] = None,
                    choose_per: str = 'pair') -> Tuple[Tensor, Tensor]:
    """SOHO's masked visual modelling targets: for each (image, text) pair, with probability ``mask_prob``, one
    dictionary entry and every valid token mapped to it. The entry:

    * ``choose_per='pair'`` (the default): the entry of a uniformly drawn *valid* token of each pair (an entry is
      chosen in proportion to its tokens), so every pair drawn for masking masks something;
    * ``choose_per='batch'`` (the released code): one grid position drawn uniformly over all N positions for the
      whole batch, each pair masking the entry at that position; a pair padded there masks nothing.

    Args:
        indices (Tensor): (n, N) long, each token's dictionary entry, -1 at padding.
        mask_prob (float): Probability that a pair is masked at all (0.015 in the released code). Defaults to
            0.015.
        generator (torch.Generator, optional): A CPU random generator.
        choose_per (str): ``'pair'`` or ``'batch'`` (see above). Defaults to ``'pair'``.

    Returns:
        tuple: ``mask`` (n, N) bool, the tokens to replace by the mask embedding, and ``labels`` (n, N) long,
        the entry at those tokens and -100 elsewhere.
    """
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f'sample_mvm_mask: mask_prob must be in [0, 1], got {mask_prob}')
    if choose_per not in MVM_CHOICES:
        raise ValueError(f'sample_mvm_mask: choose_per must be one of {MVM_CHOICES}, got {choose_per!r}')
    idx = indices.cpu()
    if choose_per == 'pair':
        score = torch.rand(idx.shape, generator=generator).masked_fill(idx < 0, -1.0)
        chosen = idx.gather(1, score.argmax(dim=1, keepdim=True))  # (n, 1); -1 for a pair without valid tokens
    else:
        position = int(torch.randint(idx.shape[1], (1,), generator=generator))
        chosen = idx[:, position:position + 1]  # -1 where that position is padding
    active = (torch.rand(len(idx), 1, generator=generator) < mask_prob) & (chosen >= 0)
    mask = active & (idx == chosen)
    labels = idx.masked_fill(~mask, -100)
    return mask.to(indices.device), labels.to(indices.device)


@MODELS.register_module()
class SOHO(ImageTextRetrievalMixin, BaseVLModel):
    r"""`SOHO <https://arxiv.org/abs/2104.03135>`_ ("Seeing Out of tHe bOx"): end-to-end pre-training from
    pixels with a visual dictionary; MLM, MVM and ITM in one single-stream transformer.

    .. code:: text

        images (B, 3, H, W) ─ backbone (ResNet, C5) ─ neck (pool, 1x1 conv, dictionary, fusion)     once per image
                                  └─ embedded (B, N, C), pos, valid, entry indices (B, N)
        B samples ─ sample_itm_texts ─ T = texts_per_image slots per image: (image b, text j, match label)
        per pair:  visual tokens = neck.tokens(embedded[b], pos[b], MVM mask)   (sample_mvm_mask)
                   [CLS] masked text [SEP] ─ language_model.embed ─┐
                                                                   cat ─ language_model layers (joint mask)
                   visual tokens ──────────────────────────────────┘
            MLM: mlm_head on the text positions (decoder tied to the word embeddings)
            MVM: cosine similarity of the visual positions to the dictionary entries / temperature, CE
            ITM: itm_head on the fused [CLS]

    As the released code, one pass over the masked text and masked visual tokens serves the three losses, and
    MLM/MVM also count on the negative pairs (``mlm_mvm_on_negatives=False``: positives only, as the paper).
    The batch holds image-caption samples (``text``, ``img_id``); the captions of the batch fill the slots
    (captions of the same ``img_id`` are positives of each other).

    Retrieval (the protocol of :class:`~mmvlg.engine.RetrievalValLoop`): SOHO has no dual encoder, so every
    (image, text) pair of the gallery is scored by ITM (the match minus the no-match logit), in chunks of
    ``retrieval_cfg.batch_size`` pairs; each image and each text is encoded once and cached.

    Image-text retrieval fine-tuning (the paper, section 4.2.1): ``losses=('itm',)`` (ITM alone: no text or
    visual masking; ``mlm_head`` may be None), ``itm_cfg.rule='all'`` (every image with every caption of the
    batch, the other captions as negatives) and ``use_dictionary=False`` (the transformer reads the
    dictionary's input features, as SOHO's downstream tasks; the neck may then be built without a dictionary).
    Parameters that get no gradient in a configuration (the MVM mask embedding without MVM; the entry
    projection and the gate without the dictionary) are frozen, so distributed training finds no unused one.

    Loss keys: ``loss_mlm``, ``loss_mvm``, ``loss_itm`` (equal weights by default, the heads' and
    ``mvm_cfg.loss_weight``), and logged values ``acc_mlm``, ``acc_mvm``, ``acc_itm``, ``mvm_tokens`` (masked
    visual tokens in the batch), ``dict_used`` (dictionary entries used by the batch's tokens),
    ``dict_perplexity``.

    Args:
        backbone (dict): A CNN returning its last feature map last (``mmdet.ResNet`` with ``out_indices=(3,)``).
        neck (dict): :class:`~mmvlg.models.necks.SOHONeck` (``out_channels`` filled in from the text encoder).
        language_model (dict): :class:`~mmvlg.models.language_models.HFTextEncoder` (BERT by ``name_or_path``,
            or ``model_config`` + a word tokenizer), no cross-attention: its layers run over text + visual tokens.
        mlm_head (dict, optional): :class:`~mmvlg.models.heads.MLMHead` (``in_dims``, ``vocab_size`` filled in;
            ``tie_word_embeddings=True`` is the default here, as the code's ``mask_l_fc``); None only without
            ``'mlm'`` in ``losses``.
        itm_head (dict): :class:`~mmvlg.models.heads.ITMHead` (``in_dims`` filled in).
        mvm_cfg (dict, optional): ``mask_prob`` (0.015, the code's), ``temperature`` (1.0: the raw cosine as the
            code), ``loss_weight`` (1.0), ``choose_per`` (:func:`sample_mvm_mask`: ``'pair'``, a valid token's
            entry per pair, the default; ``'batch'``, the released code's one grid position per batch).
        itm_cfg (dict, optional): :func:`sample_itm_texts`'s ``texts_per_image`` (4), ``rule`` (``'binomial'``,
            the code's; ``'exact'``, the paper's pre-training; ``'all'``, the paper's retrieval fine-tuning),
            ``neg_prob`` (0.5), ``num_negatives`` (2).
        mlm_mvm_on_negatives (bool): Whether MLM and MVM also count on negative pairs. Defaults to True (code).
        losses (Sequence[str]): The trained objectives among ``'mlm'``, ``'mvm'``, ``'itm'``. Defaults to all
            three (pre-training); ``('itm',)`` for retrieval fine-tuning.
        use_dictionary (bool): Whether the visual tokens go through the dictionary (training and inference).
            Defaults to True (pre-training); False for retrieval fine-tuning (needs no ``'mvm'``).
        update_per_pair (bool): Whether the dictionary update counts each image once per (image, text) pair, as
            the released code that runs the neck on every copy of an image (with the code's update the entries
            then differ only through the Laplace smoothing's epsilon; with the paper's not at all). Defaults to
            False (once per image). The neck's ``update_padding`` is the other part of the code's update.
        retrieval_cfg (dict, optional): ``batch_size``: pairs per fused forward when ranking a gallery
            (256).
        data_preprocessor (dict, optional): ``mmdet.DetDataPreprocessor``.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self, backbone: ConfigType, neck: ConfigType, language_model: ConfigType, mlm_head: ConfigType,
                 itm_head: ConfigType, mvm_cfg: OptConfigType = None, itm_cfg: OptConfigType = None,
                 mlm_mvm_on_negatives: bool = True, retrieval_cfg: OptConfigType = None,
                 losses: Sequence[str] = LOSSES, use_dictionary: bool = True, update_per_pair: bool = False,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if language_model.get('cross_attention'):
            raise ValueError('SOHO: the single-stream transformer has no cross-attention (model.language_model)')
        self.language_model = MODELS.build(language_model)
        width = self.language_model.embed_dims
        self.neck = MODELS.build(dict(dict(out_channels=width), **neck))
        if self.neck.out_channels != width:
            raise ValueError(f'SOHO: the neck gives {self.neck.out_channels}-d tokens, the transformer is {width}-d')
        self.losses = tuple(losses)
        if not self.losses or any(k not in LOSSES for k in self.losses):
            raise ValueError(f'SOHO: model.losses must be a non-empty subset of {LOSSES}, got {losses!r}')
        self.use_dictionary = bool(use_dictionary)
        self.update_per_pair = bool(update_per_pair)
        if 'mvm' in self.losses and not self.use_dictionary:
            raise ValueError("SOHO: 'mvm' in model.losses needs model.use_dictionary=True (MVM predicts entries)")
        if self.neck.dictionary is None and (self.use_dictionary or 'mvm' in self.losses):
            raise ValueError('SOHO: model.use_dictionary=True and MVM need model.neck.dictionary')
        if mlm_head is None and 'mlm' in self.losses:
            raise ValueError("SOHO: 'mlm' in model.losses needs model.mlm_head")
        self.mlm_head = None
        if mlm_head is not None:
            self.mlm_head = MODELS.build(dict(dict(in_dims=width, vocab_size=len(self.tokenizer),
                                                   tie_word_embeddings=True), **mlm_head))
            if self.mlm_head.tie_word_embeddings:
                self.mlm_head.tie_weights(self.language_model.word_embeddings)
        self.itm_head = MODELS.build(dict(dict(in_dims=width), **itm_head))
        if 'mvm' not in self.losses:  # parameters without a gradient here: frozen
            self.neck.mask_embedding.requires_grad_(False)
        if not self.use_dictionary:
            for part in (self.neck.entry_proj, self.neck.gate):
                if part is not None:
                    part.requires_grad_(False)
        self.mvm_cfg = dict(dict(mask_prob=0.015, temperature=1.0, loss_weight=1.0, choose_per='pair'),
                            **(mvm_cfg or {}))
        if self.mvm_cfg['choose_per'] not in MVM_CHOICES:
            raise ValueError(f'SOHO: mvm_cfg.choose_per must be one of {MVM_CHOICES}, got '
                             f'{self.mvm_cfg["choose_per"]!r}')
        self.itm_cfg = dict(dict(texts_per_image=4, rule='binomial', neg_prob=0.5, num_negatives=2),
                            **(itm_cfg or {}))
        if self.itm_cfg['rule'] not in NEGATIVE_RULES:
            raise ValueError(f'SOHO: itm_cfg.rule must be one of {NEGATIVE_RULES}, got {self.itm_cfg["rule"]!r}')
        self.mlm_mvm_on_negatives = bool(mlm_mvm_on_negatives)
        self.retrieval_cfg = dict(dict(k=0, weight=1.0, batch_size=256), **(retrieval_cfg or {}))

    # ---------------------------------------------------------------------------------------- encoders
    def extract_visual(self, inputs: Tensor, data_samples: SampleList, use_dictionary: Optional[bool] = None,
                       copies: int = 1) -> Dict[str, Tensor]:
        """Backbone and neck, once per image: :meth:`SOHONeck.forward <mmvlg.models.necks.SOHONeck.forward>`'s
        dict for (B, 3, H, W) ``inputs`` (``use_dictionary`` None: the model's; ``copies``: the weight of each
        image in the dictionary update)."""
        feats = self.backbone(inputs)
        feat = feats[-1] if isinstance(feats, (list, tuple)) else feats
        use_dictionary = self.use_dictionary if use_dictionary is None else use_dictionary
        return self.neck(feat, self.padding_mask(inputs, data_samples), use_dictionary=use_dictionary,
                         copies=copies)

    def fuse(self, input_ids: Tensor, attention_mask: Tensor, visual_tokens: Tensor, visual_valid: Tensor
             ) -> Tensor:
        """The single-stream transformer over ``[CLS] text [SEP]`` + visual tokens.

        Args:
            input_ids (Tensor): (n, L) token ids.
            attention_mask (Tensor): (n, L) 1 at real text tokens.
            visual_tokens (Tensor): (n, N, C) :meth:`SOHONeck.tokens` outputs.
            visual_valid (Tensor): (n, N) bool, True at real visual tokens.

        Returns:
            Tensor: (n, L + N, C); position 0 is the fused [CLS], positions L.. the visual tokens.
        """
        lm = self.language_model
        hidden = torch.cat([lm.embed(input_ids), visual_tokens.to(lm.word_embeddings.weight.dtype)], dim=1)
        mask = torch.cat([attention_mask.long(), visual_valid.long()], dim=1)
        return lm.forward_layers(hidden, mask)

    # ------------------------------------------------------------------------------------------ losses
    def check_samples(self, data_samples: SampleList) -> None:
        """Raise a ValueError naming the ``img_id`` (and path) of a sample without a caption."""
        for ds in data_samples:
            text = ds.metainfo.get('text')
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'SOHO: image {ds.metainfo.get("img_id")!r} ({ds.metainfo.get("img_path")}) has no '
                                 f'caption (text={text!r}); pre-training needs one per sample')

    def mvm_loss(self, fused_visual: Tensor, labels: Tensor) -> Dict[str, Tensor]:
        """``loss_mvm`` (cross entropy of the cosine scores / temperature over the masked tokens), ``acc_mvm``
        and ``mvm_tokens`` from (n, N, C) fused visual tokens and (n, N) labels (-100 where not masked)."""
        targets = labels >= 0
        dictionary = self.neck.dictionary
        if not targets.any():  # nothing masked (most batches at p = 0.015): a zero loss that keeps the graph
            zero = fused_visual[:, :1].sum() * 0.0
            return dict(loss_mvm=zero, acc_mvm=zero.detach().clone(), mvm_tokens=zero.detach().clone())
        logits = dictionary.cosine_logits(fused_visual[targets]).float() / float(self.mvm_cfg['temperature'])
        loss = F.cross_entropy(logits, labels[targets])
        acc = (logits.argmax(dim=1) == labels[targets]).float().mean()
        return dict(loss_mvm=float(self.mvm_cfg['loss_weight']) * loss, acc_mvm=acc.detach(),
                    mvm_tokens=targets.sum().float())

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """The pre-training losses of a batch of image-caption samples (see the class docstring).

        Args:
            inputs (Tensor): (B, 3, H, W) preprocessed images.
            data_samples (list[DetDataSample]): metainfo ``text`` (the caption), ``img_id``.

        Returns:
            dict: ``loss_mlm``, ``loss_mvm``, ``loss_itm`` (those of ``losses``) and the logged values.
        """
        self.check_samples(data_samples)
        device = inputs.device
        cfg = self.itm_cfg
        t = len(data_samples) if cfg['rule'] == 'all' else int(cfg['texts_per_image'])
        visual = self.extract_visual(inputs, data_samples, copies=t if self.update_per_pair else 1)
        text_index, itm_labels = sample_itm_texts(ids_tensor(data_samples, device=device), t, cfg['rule'],
                                                  cfg['neg_prob'], cfg['num_negatives'])
        img_index = torch.arange(len(data_samples), device=device).repeat_interleave(t)
        tok = self.tokenize([data_samples[int(i)].text for i in text_index], device)
        input_ids, mlm_labels = tok['input_ids'], None
        if 'mlm' in self.losses:
            input_ids, mlm_labels = self.mlm_head.mask(tok['input_ids'], tok['attention_mask'], self.tokenizer)
        mvm_mask = mvm_labels = None
        if 'mvm' in self.losses:
            mvm_mask, mvm_labels = sample_mvm_mask(visual['indices'][img_index], self.mvm_cfg['mask_prob'],
                                                   choose_per=self.mvm_cfg['choose_per'])
        if not self.mlm_mvm_on_negatives:
            neg = itm_labels == 0  # negatives: unmasked text and visual tokens, no MLM/MVM targets
            if mlm_labels is not None:
                input_ids = torch.where(neg[:, None], tok['input_ids'], input_ids)
                mlm_labels = mlm_labels.masked_fill(neg[:, None], -100)
            if mvm_mask is not None:
                mvm_mask = mvm_mask & ~neg[:, None]
                mvm_labels = mvm_labels.masked_fill(neg[:, None], -100)
        valid = visual['valid'][img_index]
        tokens = self.neck.tokens(visual['embedded'][img_index], visual['pos'][img_index], mvm_mask)
        fused = self.fuse(input_ids, tok['attention_mask'], tokens, valid)
        length = input_ids.shape[1]
        losses = dict()
        if mlm_labels is not None:
            losses.update(self.mlm_head.loss(fused[:, :length], mlm_labels))
        if mvm_labels is not None:
            losses.update(self.mvm_loss(fused[:, length:], mvm_labels))
        if 'itm' in self.losses:
            losses.update(self.itm_head.loss(fused[:, 0], itm_labels))
        if 'used' in visual:
            losses.update(dict_used=visual['used'], dict_perplexity=visual['perplexity'])
        return losses

    def train_step(self, data, optim_wrapper) -> Dict[str, Tensor]:
        """MMEngine's training step; with an :class:`~mmengine.optim.OptimWrapperDict` (the paper's SGD for the
        backbone and AdamW for the rest, :class:`~mmvlg.engine.ModuleOptimWrapperConstructor`), one backward
        and a step of each optimizer over its own parameters (:func:`~mmvlg.engine.multi_optim_train_step`)."""
        from mmengine.optim import OptimWrapperDict
        if isinstance(optim_wrapper, OptimWrapperDict):
            from mmvlg.engine.optimizers import multi_optim_train_step
            return multi_optim_train_step(self, data, optim_wrapper)
        return super().train_step(data, optim_wrapper)

    # -------------------------------------------------------------------------------------- inference
    def _forward(self, inputs: Tensor, data_samples: SampleList = None) -> Tensor:
        """(B, L + N, C): the transformer's outputs for each image with its own ``text`` (no masking)."""
        self.check_samples(data_samples)
        visual = self.extract_visual(inputs, data_samples)
        tok = self.tokenize([ds.text for ds in data_samples], inputs.device)
        tokens = self.neck.tokens(visual['embedded'], visual['pos'])
        return self.fuse(tok['input_ids'], tok['attention_mask'], tokens, visual['valid'])

    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        """Each sample gets ``pred_score`` (the ITM match probability of the image and its ``text``) and
        ``pred_label`` (1: a match)."""
        logits = self.itm_head(self._forward(inputs, data_samples)[:, 0]).float()
        prob = logits.softmax(dim=1)[:, 1]
        for ds, p in zip(data_samples, prob):
            ds.set_field(p.detach(), 'pred_score')
            ds.set_field((p > 0.5).long().detach(), 'pred_label')
        return data_samples

    # ----------------------------------------------------------- the retrieval protocol (RetrievalValLoop)
    @torch.no_grad()
    def encode_images(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """``tokens`` (B, N, C) the transformer's visual tokens (no MVM mask) and ``valid`` (B, N) bool."""
        visual = self.extract_visual(inputs, data_samples)
        return dict(tokens=self.neck.tokens(visual['embedded'], visual['pos']), valid=visual['valid'])

    @torch.no_grad()
    def encode_texts(self, texts, device=None) -> Dict[str, Tensor]:
        """``input_ids`` and ``attention_mask`` (n, L) of the tokenized texts."""
        tok = self.tokenize(list(texts), device)
        return dict(input_ids=tok['input_ids'], attention_mask=tok['attention_mask'])

    @torch.no_grad()
    def score_pairs(self, image_feats: Dict[str, Tensor], text_feats: Dict[str, Tensor]) -> Tensor:
        """(n,) ITM scores (match minus no-match logit) of n row-aligned pairs from their cached features."""
        fused = self.fuse(text_feats['input_ids'], text_feats['attention_mask'], image_feats['tokens'],
                          image_feats['valid'].bool())
        logits = self.itm_head(fused[:, 0]).float()
        return logits[:, 1] - logits[:, 0]

    @torch.no_grad()
    def rank_gallery(self, images, texts, device=None) -> Tuple[Tensor, Tensor]:
        """(n_img, n_text) ITM scores of every pair (the same matrix for text and image retrieval)."""
        n_img, n_text = len(images), len(texts)
        rows = torch.arange(n_img).repeat_interleave(n_text)
        cols = torch.arange(n_text).repeat(n_img)
        step = max(1, int(self.retrieval_cfg['batch_size']))
        scores = []
        for s in range(0, len(rows), step):
            r, c = rows[s:s + step].tolist(), cols[s:s + step].tolist()
            scores.append(self.score_pairs(collate_cached([images[i] for i in r], device),
                                           collate_cached([texts[j] for j in c], device)).cpu())
        sim = torch.cat(scores).view(n_img, n_text) if scores else torch.zeros(n_img, n_text)
        return sim, sim


__all__: List[str] = ['SOHO', 'sample_itm_texts', 'sample_mvm_mask', 'NEGATIVE_RULES', 'MVM_CHOICES', 'LOSSES']
