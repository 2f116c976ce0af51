"""FIBER's fine-grained grounding detector (arXiv:2206.07643, sections 3.2 and 3.3)."""
from typing import Dict, List, Sequence, Tuple

from mmdet.models.detectors import BaseDetector
from mmdet.structures import OptSampleList, SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from torch import Tensor

from mmvlg.registry import MODELS

from ..multimodal.base import VisionLanguageMixin
from ..utils import spans_to_positive_map


@MODELS.register_module()
class FIBER(VisionLanguageMixin, BaseDetector):
    r"""`FIBER <https://arxiv.org/abs/2206.07643>`_: fusion-in-the-backbone grounding detector for phrase
    grounding and referring expression comprehension (REC).

    .. code:: text

        image ─┐                                  ┌─ text-aware multi-scale feats ─ neck (FPN, P3-P7) ─┐
               ├─ backbone (Swin <-> RoBERTa, ────┤                                                    ├─ bbox_head
        text ──┘   gated cross-attention)         └─ image-aware token feats ──────────────────────────┘  (DyHead +
                                                                                                          ATSS +
                                                                                                          grounding)

    Training: token-level positive maps from each box's ``tokens_positive`` (character spans of ``text``),
    ATSS assignment, focal loss on the region-token grounding scores, GIoU and centerness losses
    (:class:`~mmvlg.models.heads.FIBERHead`).

    Prediction (``predict``) returns, per sample, ``pred_instances`` with boxes in original image pixels sorted
    by decreasing score:

    * ``grounding_task='rec'``: one group of tokens, the referring expression: the union of the sample's
      ``tokens_positive_eval`` or, without it, of its ``tokens_positive`` (the authors' evaluation uses the
      annotated spans of the referent), or every real token with ``rec_tokens='all'`` or when the sample has
      no spans (e.g. a user's text). The top-1 box is the answer; the ranking gives Prec@5/@10
      (:class:`~mmvlg.evaluation.RefExpMetric`).
    * ``grounding_task='phrase'``: one group per phrase, from the ``phrases`` metainfo
      (:class:`~mmvlg.datasets.Flickr30kEntitiesDataset`), else ``tokens_positive_eval``, else the distinct
      ``tokens_positive`` of the boxes. ``pred_instances`` holds all boxes with ``labels`` = phrase index and
      its metainfo ``phrase_bboxes`` one (k, 4) tensor per phrase, best first
      (:class:`~mmvlg.evaluation.FlickrRecallMetric`).

    Args:
        backbone (dict): :class:`~mmvlg.models.backbones.FIBERBackbone`.
        neck (dict): ``mmdet.FPN`` on the backbone's outputs.
        bbox_head (dict): :class:`~mmvlg.models.heads.FIBERHead`.
        grounding_task (str): ``'rec'`` or ``'phrase'``.
        rec_tokens (str): ``'annotated'`` (spans, falling back to all tokens) or ``'all'``.
        fusion (bool): Run the backbone's cross-attentions (FIBER is a fusion encoder for these tasks).
        data_preprocessor (dict): ``mmdet.DetDataPreprocessor``.
        train_cfg (dict): ATSS ``assigner``, ``allowed_border``, ``pos_weight``.
        test_cfg (dict): ``nms_pre``, ``score_thr``, ``nms``, ``max_per_img``.
    """

    def __init__(self,
                 backbone: ConfigType,
                 neck: ConfigType,
                 bbox_head: ConfigType,
                 grounding_task: str = 'rec',
                 rec_tokens: str = 'annotated',
                 fusion: bool = True,
                 data_preprocessor: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if grounding_task not in ('rec', 'phrase'):
            raise ValueError(f'grounding_task must be "rec" or "phrase", got {grounding_task!r}')
        if rec_tokens not in ('annotated', 'all'):
            raise ValueError(f'rec_tokens must be "annotated" or "all", got {rec_tokens!r}')
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        bbox_head = dict(bbox_head)
        train_cfg = ConfigDict(train_cfg) if train_cfg is not None else None
        test_cfg = ConfigDict(test_cfg) if test_cfg is not None else None
        bbox_head.update(train_cfg=train_cfg, test_cfg=test_cfg)
        bbox_head.setdefault('lang_dim', self.backbone.text_dims)
        self.bbox_head = MODELS.build(bbox_head)
        self.grounding_task, self.rec_tokens, self.fusion = grounding_task, rec_tokens, fusion
        self.train_cfg, self.test_cfg = train_cfg, test_cfg

    # ------------------------------------------------------------------------------------- features
    def extract_feat(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Tuple[Tuple[Tensor], dict]:
        """Text-aware image features through the neck and image-aware text features.

        Returns:
            tuple: The neck's maps, (bs, C, H_l, W_l) per level, and the head's ``language_feats`` dict
            (``embedded``/``hidden`` (bs, L, C_t), ``masks`` (bs, L), ``offsets`` (bs, L, 2)).
        """
        texts = [ds.text for ds in batch_data_samples]
        visual, text = self.backbone(batch_inputs, texts, self.padding_mask(batch_inputs, batch_data_samples),
                                     fusion=self.fusion)
        return self.neck(visual), self.bbox_head.language_feats(text)

    # ----------------------------------------------------------------------------------- token groups
    @staticmethod
    def _tokens(spans: Sequence, offsets: Tensor, num_tokens: int) -> List[int]:
        if not spans:
            return []
        pmap = spans_to_positive_map([spans], offsets, num_tokens, normalize=False)
        return pmap[0].nonzero()[:, 0].tolist()

    def token_groups(self, batch_data_samples: SampleList, language_feats: dict) -> List[Dict[int, List[int]]]:
        """Per sample, ``{label: [token indices]}`` of what to ground (labels 1, 2, ...; see the class doc)."""
        groups = []
        offsets, masks = language_feats['offsets'], language_feats['masks'].bool()
        num_tokens = masks.shape[1]
        for b, ds in enumerate(batch_data_samples):
            meta = ds.metainfo
            real = (offsets[b, :, 1] > offsets[b, :, 0]) & masks[b]
            all_tokens = real.nonzero()[:, 0].tolist() or masks[b].nonzero()[:, 0].tolist()
            if self.grounding_task == 'rec':
                spans = []
                if self.rec_tokens == 'annotated':
                    per_phrase = meta.get('tokens_positive_eval') or meta.get('tokens_positive') or []
                    spans = [list(s) for phrase in per_phrase for s in phrase]
                groups.append({1: self._tokens(spans, offsets[b], num_tokens) or all_tokens})
                continue
            if meta.get('phrases') is not None:
                per_phrase = [p['tokens_positive'] for p in meta['phrases']]
            elif meta.get('tokens_positive_eval'):
                per_phrase = meta['tokens_positive_eval']
            else:
                per_phrase = []
                for spans in meta.get('tokens_positive', []):
                    if [list(s) for s in spans] not in per_phrase:
                        per_phrase.append([list(s) for s in spans])
            groups.append({p + 1: self._tokens(spans, offsets[b], num_tokens) or all_tokens
                           for p, spans in enumerate(per_phrase)})
        return groups

    # ------------------------------------------------------------------------------------ contracts
    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        feats, language_feats = self.extract_feat(batch_inputs, batch_data_samples)
        return self.bbox_head.loss(feats, language_feats, batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList, rescale: bool = True) -> SampleList:
        """Boxes per expression (``'rec'``) or per phrase (``'phrase'``), sorted by decreasing score."""
        feats, language_feats = self.extract_feat(batch_inputs, batch_data_samples)
        groups = self.token_groups(batch_data_samples, language_feats)
        # a caption without phrases has nothing to ground: score a dummy group and drop its boxes
        queried = [g or {1: [0]} for g in groups]
        results = self.bbox_head.predict_groups(feats, language_feats, queried,
                                                [ds.metainfo for ds in batch_data_samples], rescale)
        for b, group in enumerate(groups):
            res = results[b][results[b].scores.argsort(descending=True)] if group else results[b][:0]
            if self.grounding_task == 'phrase':
                res.set_metainfo(dict(phrase_bboxes=[res.bboxes[res.labels == p] for p in range(len(group))]))
            results[b] = res
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: OptSampleList = None) -> Tuple[List[Tensor], ...]:
        """Raw head outputs: ``cls_logits`` (bs, H_l*W_l*A, L), ``bbox_preds`` (bs, 4A, H_l, W_l) and
        ``centerness`` (bs, A, H_l, W_l) per level."""
        feats, language_feats = self.extract_feat(batch_inputs, batch_data_samples)
        return self.bbox_head(feats, language_feats)
