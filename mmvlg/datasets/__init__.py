from .flickr30k import Flickr30kEntitiesDataset
from .refexp import (
    AnnotationError,
    MDETRRefExpDataset,
    RefCOCODataset,
    RefCOCOgDataset,
    RefCOCOPlusDataset,
    SynthRefDataset,
)
from .transforms import *  # noqa: F401,F403

__all__ = ['AnnotationError', 'MDETRRefExpDataset', 'RefCOCODataset', 'RefCOCOPlusDataset', 'RefCOCOgDataset',
           'SynthRefDataset', 'Flickr30kEntitiesDataset']
