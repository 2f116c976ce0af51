"""Visual question answering head: a classifier over an answer vocabulary with soft scores."""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmvlg.registry import MODELS
from mmvlg.utils.answer_list import load_answer_list

from ..layers.mlp import MLPBlock


@MODELS.register_module()
class VQAHead(BaseModule):
    """FIBER's VQA classifier: the fused ``[text_cls; image_cls]`` features (the final representations of both
    modalities, concatenated) through an :class:`~mmvlg.models.layers.MLPBlock`: Linear(2D, 2D), LayerNorm, GELU
    and Linear(2D, #answers) (keys ``classifier.0``, ``classifier.1``, ``classifier.3``). Trained with
    binary cross entropy against soft scores (VQA v2: ``min(1, #annotators who gave the answer / 3)``),
    averaged over samples and answers and multiplied by the number of answers (as the authors and BAN).

    Args:
        in_dims (int): Width of the fused features.
        answers (list[str] | str): The answer vocabulary, or a file holding it (3129 answers for VQA v2;
            :func:`mmvlg.utils.answer_list.load_answer_list`, distinct answers).
        hidden_dims (int, optional): Hidden width. Defaults to ``in_dims``.
        loss_weight (float): Weight of ``loss_vqa``. Defaults to 1.
    """

    def __init__(self, in_dims: int, answers: Union[str, Sequence[str]], hidden_dims: Optional[int] = None,
                 loss_weight: float = 1.0, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.answers = load_answer_list(answers)
        hidden_dims = hidden_dims or in_dims
        self.classifier = MLPBlock(in_dims, hidden_dims, len(self.answers))
        self.loss_weight = loss_weight

    @property
    def num_answers(self) -> int:
        return len(self.answers)

    def forward(self, cls_feats: Tensor) -> Tensor:
        """(bs, #answers) logits from (bs, in_dims) features."""
        return self.classifier(cls_feats)

    def targets(self, answer_labels: Sequence[Sequence[int]], answer_scores: Sequence[Sequence[float]],
                device=None) -> Tensor:
        """(bs, #answers) soft targets from per-sample answer indices and scores."""
        target = torch.zeros(len(answer_labels), self.num_answers, device=device)
        for i, (labels, scores) in enumerate(zip(answer_labels, answer_scores)):
            if len(labels) != len(scores):
                raise ValueError(f'VQAHead: sample {i} has {len(labels)} answer labels but {len(scores)} scores')
            for label, score in zip(labels, scores):
                if not 0 <= int(label) < self.num_answers:
                    raise ValueError(f'VQAHead: sample {i} has answer label {label} outside [0, {self.num_answers})')
                target[i, int(label)] = float(score)
        return target

    def loss(self, cls_feats: Tensor, target: Tensor) -> Dict[str, Tensor]:
        """``loss_vqa`` from (bs, in_dims) features and (bs, #answers) soft targets."""
        logits = self(cls_feats)
        loss = F.binary_cross_entropy_with_logits(logits, target) * target.shape[1]
        return dict(loss_vqa=self.loss_weight * loss)

    def predict(self, cls_feats: Tensor) -> Dict[str, object]:
        """The best answer per sample: ``answers`` (list of str), ``labels`` (bs,), ``scores`` (bs,) sigmoid."""
        probs = self(cls_feats).sigmoid()
        scores, labels = probs.max(dim=1)
        return dict(answers=[self.answers[i] for i in labels.tolist()], labels=labels, scores=scores)
