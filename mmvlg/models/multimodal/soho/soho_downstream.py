"""SOHO's downstream models (arXiv:2104.03135, section 4.2): VQA, and NLVR2 / visual entailment as classification
of one or two (image, text) pairs, on the encoders of :class:`~mmvlg.models.multimodal.soho.SOHO`."""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor, nn

from mmvlg.registry import MODELS

from ...heads.vqa_head import VQAHead
from ...layers.mlp import build_projection
from ..base import BaseVLModel
from .soho import SOHO


@MODELS.register_module()
class SOHOVQAHead(VQAHead):
    """:class:`~mmvlg.models.heads.VQAHead` (soft-score BCE over the answer vocabulary, the same targets,
    loss and predictions) with the classifier of SOHO's released VQA head: ``Linear(C, 4C) - ReLU -
    Dropout(0.5) - Linear(4C, #answers)``, Kaiming-normal weights. The two Linear layers are ``classifier.0``
    and ``classifier.3``, as the released head's ``vqa.0`` and ``vqa.3`` (and as VQAHead's MLPBlock).

    Args:
        in_dims (int): Width of the fused [CLS] feature.
        answers (list[str] | str): The answer vocabulary or a file holding it.
        hidden_dims (int, optional): Hidden width. Defaults to ``4 * in_dims`` (the released head).
        dropout (float): Dropout after the activation. Defaults to 0.5 (the released head).
        act_cfg (dict): The activation. Defaults to ``dict(type='ReLU')``.
        loss_weight (float): Weight of ``loss_vqa``. Defaults to 1.
        init_cfg (dict, optional): Initialization config; default Kaiming-normal Linear weights (zero biases).
    """

    def __init__(self, in_dims: int, answers, hidden_dims: Optional[int] = None, dropout: float = 0.5,
                 act_cfg: ConfigType = dict(type='ReLU'), loss_weight: float = 1.0, init_cfg=None) -> None:
        from mmcv.cnn import build_activation_layer
        hidden_dims = hidden_dims or 4 * in_dims
        super().__init__(in_dims, answers, hidden_dims=hidden_dims, loss_weight=loss_weight,
                         init_cfg=init_cfg or dict(type='Kaiming', layer='Linear', distribution='normal',
                                                   mode='fan_in', nonlinearity='relu', bias=0.0))
        self.classifier = nn.Sequential(nn.Linear(in_dims, hidden_dims), build_activation_layer(dict(act_cfg)),
                                        nn.Dropout(dropout), nn.Linear(hidden_dims, self.num_answers))


class SOHODownstreamBase(BaseVLModel):
    r"""The encoders of :class:`~mmvlg.models.multimodal.soho.SOHO` (same attribute names ``backbone``, ``neck``
    and ``language_model``, so a SOHO pre-training checkpoint loads into them with ``load_from``) without the
    pre-training heads, and with the visual dictionary skipped: the transformer reads the dictionary's *input*
    features (the paper, section 4.2; the released VQA neck ``SimpleVDforVQA``: pool, 1x1 conv, sine position,
    LayerNorm).

    .. code:: text

        images (B, 3, H, W) ─ backbone (C5) ─ neck(use_dictionary=False) ─ features v (B, N, C), pos, valid
        [CLS] text [SEP] ─ language_model.embed ─┐
                                                 cat ─ language_model layers ─ (n, L + N, C); [CLS] = position 0
        LN(v + pos) ─────────────────────────────┘

    The neck may be built without a dictionary (``dictionary=None``: the downstream configs; a pre-training
    checkpoint's ``neck.dictionary.*``, ``neck.entry_proj.*`` and ``neck.gate.*`` are then unexpected keys, and
    ``mlm_head.*`` / ``itm_head.*`` too: the configs' ``CheckpointKeysHook`` allows them) or with one (it is not
    used). The neck's MVM mask embedding is never used downstream and is frozen (no gradient, so distributed
    training finds no unused trainable parameter).

    Args:
        backbone (dict): A CNN returning its last feature map last (``mmdet.ResNet``, ``out_indices=(3,)``).
        neck (dict): :class:`~mmvlg.models.necks.SOHONeck` (``out_channels`` filled in from the text encoder).
        language_model (dict): :class:`~mmvlg.models.language_models.HFTextEncoder` without cross-attention.
        data_preprocessor (dict, optional): ``mmdet.DetDataPreprocessor``.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self, backbone: ConfigType, neck: ConfigType, language_model: ConfigType,
                 data_preprocessor: OptConfigType = None, init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if language_model.get('cross_attention'):
            raise ValueError(f'{type(self).__name__}: the single-stream transformer has no cross-attention '
                             '(model.language_model)')
        self.language_model = MODELS.build(language_model)
        width = self.language_model.embed_dims
        self.neck = MODELS.build(dict(dict(out_channels=width), **neck))
        if self.neck.out_channels != width:
            raise ValueError(f'{type(self).__name__}: the neck gives {self.neck.out_channels}-d tokens, the '
                             f'transformer is {width}-d')
        self.neck.mask_embedding.requires_grad_(False)  # MVM's; unused downstream

    @property
    def width(self) -> int:
        """The transformer's width C."""
        return self.language_model.embed_dims

    #: The single-stream transformer over text + visual tokens (:meth:`SOHO.fuse`).
    fuse = SOHO.fuse

    def encode_images(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """``tokens`` (B, N, C): LN(the dictionary's input features + sine positions), and ``valid`` (B, N) bool
        (False at the padding), for (B, 3, H, W) ``inputs``."""
        feats = self.backbone(inputs)
        feat = feats[-1] if isinstance(feats, (list, tuple)) else feats
        visual = self.neck(feat, self.padding_mask(inputs, data_samples), use_dictionary=False)
        return dict(tokens=self.neck.tokens(visual['features'], visual['pos']), valid=visual['valid'])

    def fused_cls(self, texts: List[str], tokens: Tensor, valid: Tensor) -> Tensor:
        """(n, C) the fused [CLS] of n (text, image) pairs.

        Args:
            texts (list[str]): n texts.
            tokens (Tensor): (n, N, C) visual tokens (:meth:`encode_images`), row-aligned with ``texts``.
            valid (Tensor): (n, N) bool.
        """
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'{type(self).__name__}: sample {i} of the batch has no text ({text!r})')
        tok = self.tokenize(texts, tokens.device)
        return self.fuse(tok['input_ids'], tok['attention_mask'], tokens, valid)[:, 0]

    def train_step(self, data, optim_wrapper) -> Dict[str, Tensor]:
        """As :meth:`SOHO.train_step`: an :class:`~mmengine.optim.OptimWrapperDict` (SGD for the backbone, AdamW
        for the rest) steps each optimizer over its own parameters."""
        from mmengine.optim import OptimWrapperDict
        if isinstance(optim_wrapper, OptimWrapperDict):
            from mmvlg.engine.optimizers import multi_optim_train_step
            return multi_optim_train_step(self, data, optim_wrapper)
        return super().train_step(data, optim_wrapper)


def _sample_name(ds) -> str:
    meta = ds.metainfo
    return f'{meta.get("question_id", meta.get("img_id"))!r} ({meta.get("img_path")})'


@MODELS.register_module()
class SOHOVQA(SOHODownstreamBase):
    r"""`SOHO <https://arxiv.org/abs/2104.03135>`_ for VQA (section 4.2.2): the fused [CLS] of the question and
    the image through an MLP over the answer vocabulary, trained with soft-score binary cross entropy (the
    released ``SOHOSingleStreamVQA`` with ``SOHO_DownStream_VQA_head``).

    .. code:: text

        image ─ backbone ─ neck (no dictionary) ─ visual tokens (B, N, C)
        question ─ [CLS] question [SEP] + visual tokens ─ transformer ─ [CLS] (B, C) ─ vqa_head ─ (B, #answers)

    Training samples carry the question as ``text`` and ``answer_labels`` / ``answer_scores`` (the soft targets
    of :class:`~mmvlg.datasets.VQAv2Dataset`); ``predict`` sets ``pred_answer`` (str), ``pred_answer_label`` and
    ``pred_answer_score`` (sigmoid) for :class:`~mmvlg.evaluation.VQAAccuracy`. Loss keys: ``loss_vqa`` and the
    logged ``acc_vqa`` (the soft score of the arg-max answer, the released head's ``score``, in [0, 1]).

    Args:
        backbone, neck, language_model, data_preprocessor, init_cfg: See :class:`SOHODownstreamBase`.
        vqa_head (dict): :class:`SOHOVQAHead` (the released shape) or :class:`~mmvlg.models.heads.VQAHead`
            (``in_dims`` filled in).
    """

    def __init__(self, backbone: ConfigType, neck: ConfigType, language_model: ConfigType, vqa_head: ConfigType,
                 data_preprocessor: OptConfigType = None, init_cfg: OptMultiConfig = None) -> None:
        super().__init__(backbone, neck, language_model, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.vqa_head = MODELS.build(dict(dict(in_dims=self.width), **vqa_head))

    def question_cls(self, inputs: Tensor, data_samples: SampleList) -> Tensor:
        """(B, C) the fused [CLS] of each sample's question (``text``) and image."""
        visual = self.encode_images(inputs, data_samples)
        return self.fused_cls([ds.metainfo.get('text') for ds in data_samples], visual['tokens'], visual['valid'])

    def _forward(self, inputs: Tensor, data_samples: SampleList = None) -> Tensor:
        """(B, #answers) answer logits."""
        return self.vqa_head(self.question_cls(inputs, data_samples))

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """``loss_vqa`` and ``acc_vqa`` of a batch of B questions.

        Raises:
            KeyError: A sample without ``answer_labels`` / ``answer_scores``, naming its question id and image.
            ValueError: An answer label outside the head's answer vocabulary, naming the question.
        """
        for ds in data_samples:
            if 'answer_labels' not in ds.metainfo or 'answer_scores' not in ds.metainfo:
                raise KeyError(f'{type(self).__name__}: training sample {_sample_name(ds)} has no '
                               'answer_labels/answer_scores')
            bad = [int(x) for x in ds.answer_labels if not 0 <= int(x) < self.vqa_head.num_answers]
            if bad:
                raise ValueError(f'{type(self).__name__}: question {_sample_name(ds)} has the answer label {bad[0]} '
                                 f'outside the {self.vqa_head.num_answers} answers of model.vqa_head: the data '
                                 'set\'s answer_list must be the head\'s')
        target = self.vqa_head.targets([ds.answer_labels for ds in data_samples],
                                       [ds.answer_scores for ds in data_samples], inputs.device)
        cls = self.question_cls(inputs, data_samples)
        losses = self.vqa_head.loss(cls, target)
        with torch.no_grad():
            best = self.vqa_head(cls).argmax(dim=1)
            losses['acc_vqa'] = target.gather(1, best[:, None]).mean()
        return losses

    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        pred = self.vqa_head.predict(self.question_cls(inputs, data_samples))
        for b, ds in enumerate(data_samples):
            ds.set_metainfo(dict(pred_answer=pred['answers'][b]))
            ds.set_field(pred['labels'][b].detach(), 'pred_answer_label')
            ds.set_field(pred['scores'][b].detach(), 'pred_answer_score')
        return data_samples


@MODELS.register_module()
class SOHOPairClassifier(SOHODownstreamBase):
    r"""SOHO for the classification of a text about ``num_images`` images: NLVR2 (section 4.2.3: two (image,
    statement) pairs through the transformer, the two fused [CLS] concatenated, an MLP, true/false) with
    ``num_images=2, num_classes=2``, and visual entailment (SNLI-VE: one (image, hypothesis) pair, [CLS], an MLP,
    entailment / neutral / contradiction) with ``num_images=1, num_classes=3``.

    .. code:: text

        num_images = 2 (NLVR2, nlvr2_collate: samples 2i, 2i+1 are the left and right image of statement i)
            2B images ─ encode_images ─ (2B, N, C);  statement i paired with each of its images
            ─ transformer ─ [CLS] (2B, C) ─ view (B, 2C) = [CLS_left; CLS_right] ─ cls_head ─ (B, 2)
        num_images = 1 (visual entailment)
            B images, B hypotheses ─ transformer ─ [CLS] (B, C) ─ cls_head ─ (B, 3)

    One model for both because they differ only in the number of pairs per text and of classes (the paper's
    NLVR2 and SNLI-VE heads are the same MLP on one or two [CLS]). Samples carry ``text`` and ``label`` (an int
    in ``[0, num_classes)``: NLVR2 0 false / 1 true, :class:`~mmvlg.datasets.NLVR2Dataset`; entailment 0 / neutral
    1 / contradiction 2, :class:`~mmvlg.datasets.SNLIVEDataset`). Loss keys ``loss_{task_name}`` (cross entropy)
    and ``acc_{task_name}``. :meth:`predict` returns one sample per text (for NLVR2 the left images' samples) with
    ``pred_label`` (int) and ``pred_score`` ((num_classes,) probabilities) for
    :class:`~mmvlg.evaluation.ClassificationAccuracy`.

    Args:
        backbone, neck, language_model, data_preprocessor, init_cfg: See :class:`SOHODownstreamBase`.
        num_images (int): Images per text, 1 or 2. Defaults to 2.
        num_classes (int): Classes. Defaults to 2.
        cls_head (dict, optional): The classifier (:func:`~mmvlg.models.layers.build_projection`, widths filled
            in: ``num_images * C`` -> ``num_classes``). Defaults to ``dict(type='MLPBlock', hidden_dims=2 * C)``.
        loss_weight (float): Weight of the loss. Defaults to 1.
        task_name (str): Suffix of the loss keys. Defaults to ``'nlvr'`` for two images, ``'ve'`` for one.
    """

    def __init__(self, backbone: ConfigType, neck: ConfigType, language_model: ConfigType, num_images: int = 2,
                 num_classes: int = 2, cls_head: OptConfigType = None, loss_weight: float = 1.0,
                 task_name: Optional[str] = None, data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(backbone, neck, language_model, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if num_images not in (1, 2):
            raise ValueError(f'SOHOPairClassifier: num_images must be 1 or 2, got {num_images}')
        if num_classes < 2:
            raise ValueError(f'SOHOPairClassifier: num_classes must be at least 2, got {num_classes}')
        self.num_images, self.num_classes = int(num_images), int(num_classes)
        head = dict(type='MLPBlock', hidden_dims=2 * self.width) if cls_head is None else cls_head
        self.cls_head = build_projection(head, self.num_images * self.width, self.num_classes)
        self.loss_weight = float(loss_weight)
        self.task_name = task_name or ('nlvr' if self.num_images == 2 else 've')

    def text_samples(self, data_samples: SampleList) -> SampleList:
        """One sample per text: all of them for one image per text; for two, the left images' samples after
        checking the NLVR2 batch layout (:meth:`XVLMNLVR.group_pairs
        <mmvlg.models.multimodal.xvlm.XVLMNLVR.group_pairs>`: a statement without its second image is an error
        naming it)."""
        if self.num_images == 1:
            return list(data_samples)
        from ..xvlm.xvlm_nlvr import XVLMNLVR
        try:
            return XVLMNLVR.group_pairs(data_samples)
        except ValueError as err:
            raise ValueError(str(err).replace('XVLMNLVR', type(self).__name__)) from err

    def _forward(self, inputs: Tensor, data_samples: SampleList = None) -> Tensor:
        """(B, num_classes) logits of the B texts of a batch of ``num_images * B`` image samples."""
        texts = [ds.metainfo.get('text') for ds in self.text_samples(data_samples)]
        visual = self.encode_images(inputs, data_samples)
        per_image = [texts[i // self.num_images] for i in range(len(data_samples))]
        cls = self.fused_cls(per_image, visual['tokens'], visual['valid'])
        return self.cls_head(cls.reshape(len(texts), self.num_images * self.width))

    def _labels(self, samples: SampleList, device) -> Tensor:
        labels = []
        for ds in samples:
            label = ds.metainfo.get('label')
            if hasattr(label, 'item'):
                label = label.item()
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < self.num_classes:
                raise ValueError(f'{type(self).__name__}: sample {_sample_name(ds)} has the label {label!r}; '
                                 f'expected an int in [0, {self.num_classes})')
            labels.append(label)
        return torch.tensor(labels, dtype=torch.long, device=device)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """``loss_{task_name}`` and ``acc_{task_name}`` of a batch.

        Args:
            inputs (Tensor): (num_images * B, 3, H, W) preprocessed images.
            data_samples (list[DetDataSample]): ``num_images * B`` samples with ``text`` and ``label``.
        """
        labels = self._labels(self.text_samples(data_samples), inputs.device)
        logits = self._forward(inputs, data_samples)
        acc = (logits.argmax(dim=1) == labels).float().mean().detach()
        return {f'loss_{self.task_name}': self.loss_weight * F.cross_entropy(logits.float(), labels),
                f'acc_{self.task_name}': acc}

    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        """The B text samples, each with ``pred_label`` (int) and ``pred_score`` ((num_classes,) softmax)."""
        probs = self._forward(inputs, data_samples).float().softmax(dim=1)
        samples = self.text_samples(data_samples)
        for ds, p in zip(samples, probs):
            ds.set_field(int(p.argmax()), 'pred_label')
            ds.set_field(p.detach(), 'pred_score')
        return samples


__all__ = ['SOHOVQAHead', 'SOHODownstreamBase', 'SOHOVQA', 'SOHOPairClassifier']
