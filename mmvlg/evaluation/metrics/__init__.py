from .phrase_grounding_metric import FlickrRecallMetric
from .refexp_metric import RefExpMetric

__all__ = ['RefExpMetric', 'FlickrRecallMetric']
