from .inferencer import GroundingInferencePipeline, GroundingInferencer, get_test_pipeline_cfg

__all__ = ['GroundingInferencer', 'GroundingInferencePipeline', 'get_test_pipeline_cfg']
