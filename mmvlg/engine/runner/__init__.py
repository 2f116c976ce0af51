from .region_step_loop import RegionStepTrainLoop, merge_data_batches, region_step_draw
from .retrieval_loop import RetrievalTestLoop, RetrievalValLoop

__all__ = ['RetrievalValLoop', 'RetrievalTestLoop', 'RegionStepTrainLoop', 'merge_data_batches', 'region_step_draw']
