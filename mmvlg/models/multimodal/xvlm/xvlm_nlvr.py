"""X-VLM for NLVR2 (arXiv:2111.08276, section 4.2): a statement about two images, true or false, and the authors'
text-assignment pre-training step before it."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor

from mmvlg.registry import MODELS

from ...heads.itm_head import ids_tensor
from ...layers.mlp import build_projection
from ...utils.text_assignment import text_assignment_pairs
from .xvlm import XVLM


@MODELS.register_module()
class XVLMNLVR(XVLM):
    r"""X-VLM's NLVR2 model: the statement's text tokens attend to both images of a pair in the cross encoder,
    and a classifier on the fused [CLS] says whether the statement is true.

    .. code:: text

        2B images (samples 2i, 2i+1: left, right) ─ vision_encoder ─ (2B, 1+N, C_v) ─ left (B, ...), right (B, ...)
        B statements ─ layers [0, fusion_layer) ─ text tokens (B, L, C)
            ─ for each cross layer k: copy 0 (self-att, cross-att to the left image, FFN)
                                      copy 1 (self-att, cross-att to the right image, FFN)      (keys/values shared)
            ─ fused [CLS] (B, C) ─ cls_head (MLPBlock C -> 2C -> num_classes) ─ logits (B, num_classes)

    As the authors (``models/model_nlvr.py``, ALBEF's NLVR2 encoder), each cross layer of the pre-trained model is
    duplicated, one copy per image, the text passing through the two copies in turn; the copies of a layer share
    the key and value projections of their cross-attention (the query and output projections, the self-attention
    and the FFN are each copy's own). The language model is an
    :class:`~mmvlg.models.language_models.HFTextEncoder` with ``cross_attention=dict(start=fusion_layer,
    num_contexts=2)``: layer ``k`` of the single-image encoder is layers ``f + 2 (k - f)`` and ``f + 2 (k - f) + 1``
    here (the authors' numbering), and loading a single-image checkpoint (an :class:`XVLM` pre-training one)
    copies each cross layer into both copies (:meth:`HFTextEncoder.expand_state_dict`), as the authors'
    ``load_pretrained``; a checkpoint of this layout (the text-assignment step's, :class:`XVLMNLVRPretrain`)
    loads as is.

    A batch is :func:`~mmvlg.datasets.nlvr2_collate`'s: samples ``2i`` and ``2i + 1`` are the left and right
    images of statement ``i`` (metainfo ``text``, ``label``, ``img_id``, ``image_index`` 0/1). Loss keys:
    ``loss_nlvr`` (cross entropy) and ``acc_nlvr``. :meth:`predict` returns the B left samples, each with
    ``pred_label`` (int) and ``pred_score`` (num_classes,) probabilities, for
    :class:`~mmvlg.evaluation.ClassificationAccuracy`.

    Args:
        vision_encoder (dict): :class:`~mmvlg.models.backbones.XVLMViT` or :class:`~mmvlg.models.backbones.XVLMSwin`.
        language_model (dict): :class:`~mmvlg.models.language_models.HFTextEncoder` with ``cross_attention``
            (``num_contexts`` defaults to 2 here; ``context_dims`` to the vision encoder's width).
        cls_head (dict): The classifier on the fused [CLS] (:func:`~mmvlg.models.layers.build_projection`, in and
            out widths filled in); the authors' ``build_mlp``: ``dict(type='MLPBlock', hidden_dims=2 * width)``.
            Defaults to an MLPBlock of hidden width 2 x the text width.
        num_classes (int): Outputs of the classifier. Defaults to 2 (false, true).
        loss_weight (float): Weight of ``loss_nlvr``. Defaults to 1.
        fusion_layer (int, optional): First layer of the cross encoder (default: the first with cross-attention).
        data_preprocessor (dict, optional): ``mmdet.DetDataPreprocessor``.
        init_cfg (dict, optional): Initialization config.
        **kwargs: Other :class:`XVLM` arguments (e.g. ``itc_head`` for :class:`XVLMNLVRPretrain`).
    """

    requires_pretraining_head = False
    #: The attribute (and state-dict prefix) of the classifier (the authors' names).
    classifier_name = 'cls_head'
    #: The loss and accuracy key suffix.
    task_name = 'nlvr'

    def __init__(self, vision_encoder: ConfigType, language_model: ConfigType, cls_head: OptConfigType = None,
                 num_classes: int = 2, loss_weight: float = 1.0, fusion_layer: Optional[int] = None,
                 data_preprocessor: OptConfigType = None, init_cfg: OptMultiConfig = None, **kwargs) -> None:
        language_model = dict(language_model)
        cross = dict(language_model.get('cross_attention') or {})
        if not cross:
            raise ValueError(f'{type(self).__name__}: model.language_model needs cross_attention=dict(start=..., '
                             'num_contexts=2) (the cross encoder for two images)')
        cross.setdefault('num_contexts', 2)
        if cross['num_contexts'] != 2:
            raise ValueError(f'{type(self).__name__}: model.language_model.cross_attention.num_contexts must be 2 '
                             f'(one copy of each cross layer per image), got {cross["num_contexts"]}')
        language_model['cross_attention'] = cross
        super().__init__(vision_encoder, language_model, fusion_layer=fusion_layer,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg, **kwargs)
        head = dict(type='MLPBlock', hidden_dims=2 * self.text_dims) if cls_head is None else cls_head
        setattr(self, self.classifier_name, build_projection(head, self.text_dims, num_classes))
        self.num_classes = int(num_classes)
        self.loss_weight = float(loss_weight)

    @property
    def classifier(self):
        """The classifier on the fused [CLS] (``cls_head``; ``ta_head`` in :class:`XVLMNLVRPretrain`)."""
        return getattr(self, self.classifier_name)

    # ------------------------------------------------------------------------------------------ pairs
    @staticmethod
    def group_pairs(data_samples: SampleList) -> SampleList:
        """The statement samples (the left images, samples ``0, 2, 4, ...``) of a batch of
        :func:`~mmvlg.datasets.nlvr2_collate`, after checking that samples ``2i`` and ``2i + 1`` are the two images of
        one statement.

        Raises:
            ValueError: An odd number of samples, or samples ``2i``/``2i + 1`` that are not the left and right image
                of one statement (another ``img_id`` or ``text``, or ``image_index`` not 0 then 1), naming the
                statement: a statement without its second image.
        """
        n = len(data_samples)
        if n % 2:
            last = data_samples[-1].metainfo
            raise ValueError(f'XVLMNLVR: a batch of {n} image samples; NLVR2 batches hold two per statement '
                             f'(samples 2i, 2i+1); statement {last.get("img_id")!r} ({last.get("img_path")}) has no '
                             'second image. Batch NLVR2 samples with collate_fn=dict(type="nlvr2_collate")')
        for i in range(0, n, 2):
            a, b = data_samples[i].metainfo, data_samples[i + 1].metainfo
            where = f'statement {a.get("img_id")!r} ({a.get("img_path")}, sample {i} of the batch)'
            if a.get('img_id') != b.get('img_id') or a.get('text') != b.get('text'):
                raise ValueError(f'XVLMNLVR: {where} has no second image: sample {i + 1} belongs to statement '
                                 f'{b.get("img_id")!r}. Batch NLVR2 samples with collate_fn=dict(type='
                                 '"nlvr2_collate")')
            if (a.get('image_index', 0), b.get('image_index', 1)) != (0, 1):
                raise ValueError(f'XVLMNLVR: {where}: samples {i}, {i + 1} have image_index '
                                 f'{a.get("image_index")}, {b.get("image_index")}; expected the left (0), then the '
                                 'right (1) image')
        return [data_samples[i] for i in range(0, n, 2)]

    def pair_logits(self, left: Tensor, right: Tensor, texts: Sequence[str]) -> Tensor:
        """(B, num_classes) classifier logits of B texts, each about the images ``left[b]`` and ``right[b]``.

        Args:
            left (Tensor): (B, 1+N, C_v) tokens of the first images.
            right (Tensor): (B, 1+N, C_v) tokens of the second images.
            texts (list[str]): B texts.
        """
        tok = self.tokenize(list(texts), left.device)
        fused = self.cross_encode(self.encode_text(tok), tok['attention_mask'], [left, right])
        return self.classifier(fused[:, 0])

    def _forward(self, inputs: Tensor, data_samples: SampleList = None) -> Tensor:
        """(B, num_classes) logits of the B statements of a batch of 2B image samples (inputs (2B, 3, H, W))."""
        statements = self.group_pairs(data_samples)
        image = self.vision_encoder(inputs)
        return self.pair_logits(image[0::2], image[1::2], [ds.text for ds in statements])

    def _labels(self, statements: SampleList, device) -> Tensor:
        labels = []
        for ds in statements:
            label = ds.metainfo.get('label')
            if label is None or not 0 <= int(label) < self.num_classes:
                raise ValueError(f'{type(self).__name__}: statement {ds.metainfo.get("img_id")!r} has the label '
                                 f'{label!r}; expected an int in [0, {self.num_classes})')
            labels.append(int(label))
        return torch.tensor(labels, dtype=torch.long, device=device)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """``loss_nlvr`` (cross entropy, times ``loss_weight``) and ``acc_nlvr`` of a batch of 2B image samples.

        Args:
            inputs (Tensor): (2B, 3, H, W) preprocessed images, the left and right image of statement i at 2i, 2i+1.
            data_samples (list[DetDataSample]): 2B samples with ``text``, ``label``, ``img_id``, ``image_index``.
        """
        logits = self._forward(inputs, data_samples)
        labels = self._labels(self.group_pairs(data_samples), inputs.device)
        acc = (logits.argmax(dim=1) == labels).float().mean().detach()
        return {f'loss_{self.task_name}': self.loss_weight * F.cross_entropy(logits, labels),
                f'acc_{self.task_name}': acc}

    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        """The B statement samples (the left images' data samples), each with ``pred_label`` (int, the argmax) and
        ``pred_score`` ((num_classes,) softmax probabilities)."""
        logits = self._forward(inputs, data_samples)
        statements = self.group_pairs(data_samples)
        probs = logits.float().softmax(dim=1)
        for ds, p in zip(statements, probs):
            ds.set_field(int(p.argmax()), 'pred_label')
            ds.set_field(p.detach(), 'pred_score')
        return statements


@MODELS.register_module()
class XVLMNLVRPretrain(XVLMNLVR):
    r"""The authors' extra pre-training step before NLVR2 (``NLVR_pretrain.py``, ``models/model_nlvr_pretrain.py``;
    the paper: one epoch on the 4M pre-training images): *text assignment*. Each caption of a batch of image-caption
    pairs is given two images, its own and a hard negative (left or right: labels 0, 1) or two hard negatives
    (label 2, "neither", probability ``neither_prob``), drawn by the similarity of the images' ITC embeddings
    (:func:`~mmvlg.models.utils.text_assignment.text_assignment_pairs`), and the two-image cross encoder of
    :class:`XVLMNLVR` with a linear ``ta_head`` (C -> 3) says which.

    .. code:: text

        B images ─ vision_encoder ─ (B, 1+N, C_v) ─ itc_head.embed_image (frozen) ─ sim / temperature (no grad)
                                                  ─ text_assignment_pairs ─ (left, right, label) per caption
        caption b ─ text encoder ─ two-image cross encoder (image[left], image[right]) ─ [CLS] ─ ta_head ─ CE

    The ITC head comes with the pre-trained checkpoint and is only read (the authors compute the image features
    without gradients; its parameters are frozen here). The resulting checkpoint has :class:`XVLMNLVR`'s layout and
    initializes the NLVR2 fine-tuning (``load_from``; the authors' ``--load_nlvr_pretrain``; ``ta_head`` and
    ``itc_head`` are left out there).

    A batch holds interface-2 image-text samples (``text``, ``img_id``; regions are ignored). Loss keys:
    ``loss_ta``, ``acc_ta``. :meth:`predict` takes an NLVR2-style batch (2B samples, pairs 2i, 2i+1) and gives
    each statement ``pred_label`` 0 (the left image), 1 (the right one) or 2 (neither) and ``pred_score`` (3,).

    Args:
        vision_encoder (dict): As :class:`XVLMNLVR`.
        language_model (dict): As :class:`XVLMNLVR`.
        itc_head (dict): :class:`~mmvlg.models.heads.ITCHead` of the pre-trained model (its image projection).
        ta_head (dict, optional): The classifier (:func:`~mmvlg.models.layers.build_projection`). Defaults to
            ``dict(type='Linear')``, the authors' ``ta_head``.
        temperature (float): The fixed temperature of the image similarities. Defaults to 0.07, as the authors.
        neither_prob (float): Probability of a "neither" pair. Defaults to 1/3, as the authors.
        cls_head (None): Must be None (a config inheriting from an NLVR2 one sets it so).
        **kwargs: :class:`XVLMNLVR` arguments (``fusion_layer``, ``data_preprocessor``, ``init_cfg``, ...).
    """

    classifier_name = 'ta_head'
    task_name = 'ta'

    def __init__(self, vision_encoder: ConfigType, language_model: ConfigType, itc_head: ConfigType,
                 ta_head: OptConfigType = None, temperature: float = 0.07, neither_prob: float = 1.0 / 3.0,
                 cls_head: OptConfigType = None, **kwargs) -> None:
        if cls_head is not None:
            raise ValueError('XVLMNLVRPretrain: its classifier is model.ta_head; set model.cls_head=None')
        if itc_head is None:
            raise ValueError('XVLMNLVRPretrain: model.itc_head is needed (its image embeddings draw the hard '
                             'negative images)')
        if not 0.0 <= neither_prob <= 1.0 or temperature <= 0:
            raise ValueError(f'XVLMNLVRPretrain: neither_prob must lie in [0, 1] and temperature be > 0, got '
                             f'{neither_prob}, {temperature}')
        super().__init__(vision_encoder, language_model, cls_head=ta_head or dict(type='Linear'), num_classes=3,
                         itc_head=itc_head, **kwargs)
        self.itc_head.requires_grad_(False)
        self.temperature = float(temperature)
        self.neither_prob = float(neither_prob)

    def assignment_batch(self, image: Tensor, data_samples: SampleList) -> Tuple[Tensor, Tensor, Tensor]:
        """``left`` (B,), ``right`` (B,) image indices and ``labels`` (B,) of the captions of a batch (see the
        class docstring)."""
        with torch.no_grad():
            emb = self.itc_head.embed_image(image)
            sim = emb @ emb.t() / self.temperature
        return text_assignment_pairs(sim, ids_tensor(data_samples, device=image.device), self.neither_prob)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """``loss_ta`` (cross entropy, times ``loss_weight``) and ``acc_ta`` of a batch of B image-caption pairs.

        Args:
            inputs (Tensor): (B, 3, H, W) preprocessed images.
            data_samples (list[DetDataSample]): B samples with ``text`` (the caption) and ``img_id``.
        """
        texts = []
        for ds in data_samples:
            text = ds.metainfo.get('text')
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'XVLMNLVRPretrain: image {ds.metainfo.get("img_id")!r} '
                                 f'({ds.metainfo.get("img_path")}) has no caption (text {text!r})')
            texts.append(text)
        image = self.vision_encoder(inputs)
        left, right, labels = self.assignment_batch(image, data_samples)
        logits = self.pair_logits(image[left], image[right], texts)
        acc = (logits.argmax(dim=1) == labels).float().mean().detach()
        return dict(loss_ta=self.loss_weight * F.cross_entropy(logits, labels), acc_ta=acc)


__all__: List[str] = ['XVLMNLVR', 'XVLMNLVRPretrain']
