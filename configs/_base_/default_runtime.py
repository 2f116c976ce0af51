default_scope = 'mmvlg'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_best=None),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # mmdet's DetVisualizationHook, but test drawings are saved per sample, not per image file.
    visualization=dict(type='SampleVisualizationHook'))
# No custom hook is needed to keep checkpoints loadable with torch.load(weights_only=True): importing mmvlg makes
# every Runner sanitize what it saves (mmvlg/utils/checkpoint.py, register_sanitizing_checkpoint_save).

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='GroundingVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
