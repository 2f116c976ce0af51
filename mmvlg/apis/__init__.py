from .inferencer import (
    GroundingInferencePipeline,
    GroundingInferencer,
    check_image_file,
    get_test_pipeline_cfg,
    to_bgr_uint8,
)

__all__ = ['GroundingInferencer', 'GroundingInferencePipeline', 'get_test_pipeline_cfg', 'to_bgr_uint8',
           'check_image_file']
