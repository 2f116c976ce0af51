from .classification_metric import ClassificationAccuracy
from .phrase_grounding_metric import FlickrRecallMetric
from .refexp_metric import RefExpMetric
from .retrieval_metric import RetrievalRecallMetric, group_texts_by_image, retrieval_recall
from .vqa_metric import VQAAccuracy, normalize_answer, vqa_accuracy

__all__ = [
    'RefExpMetric', 'FlickrRecallMetric', 'RetrievalRecallMetric', 'retrieval_recall', 'VQAAccuracy',
    'vqa_accuracy', 'normalize_answer', 'group_texts_by_image', 'ClassificationAccuracy'
]
