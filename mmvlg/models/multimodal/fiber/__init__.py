from .fiber_coarse import FIBERVQA, FIBERCoarse, FIBERCoarseBase, ids_tensor

__all__ = ['FIBERCoarse', 'FIBERVQA', 'FIBERCoarseBase', 'ids_tensor']
