from .positive_map import batch_positive_maps, spans_to_positive_map

__all__ = ['spans_to_positive_map', 'batch_positive_maps']
