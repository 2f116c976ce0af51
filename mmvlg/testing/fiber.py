"""Tiny FIBER configs for fast unit tests (same structure as the reference configs)."""
from typing import Sequence


def tiny_fiber_backbone_config(num_fusion_layers: int = 2, embed_dims: int = 16,
                               depths: Sequence[int] = (1, 1, 2, 1), text_layers: int = 3,
                               out_indices: Sequence[int] = (1, 2, 3), window_size: int = 7) -> dict:
    """A FIBER backbone of a 16-wide Swin (depths 1-1-2-1) and a 3-layer, 32-wide RoBERTa over SynthRef's
    vocabulary, with no dropout so that outputs are deterministic."""
    return dict(
        type='FIBERBackbone', num_fusion_layers=num_fusion_layers,
        visual=dict(type='mmdet.SwinTransformer', embed_dims=embed_dims, depths=tuple(depths),
                    num_heads=(1, 1, 2, 2)[:len(depths)], window_size=window_size, drop_path_rate=0.0,
                    out_indices=tuple(out_indices)),
        language_model=dict(type='HFTextEncoder', max_length=31,
                            model_config=dict(model_type='roberta', hidden_size=32, num_hidden_layers=text_layers,
                                              num_attention_heads=2, intermediate_size=64,
                                              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
                            tokenizer=dict(type='word', vocab='synthref')))


def fiber_head_config(in_channels: int = 256, num_dyhead_blocks: int = 6, use_dcn: bool = True) -> dict:
    """FIBER's (GLIP's) ATSS grounding head with its anchors, box coder and losses."""
    return dict(
        type='FIBERHead', in_channels=in_channels, feat_channels=in_channels, num_dyhead_blocks=num_dyhead_blocks,
        use_dyrelu=True, use_dyfuse=True, use_dcn=use_dcn,
        anchor_generator=dict(type='mmdet.AnchorGenerator', ratios=[1.0], octave_base_scale=8, scales_per_octave=1,
                              strides=[8, 16, 32, 64, 128], center_offset=0.5),
        bbox_coder=dict(type='mmdet.DeltaXYWHBBoxCoderForGLIP', target_means=[0.0, 0.0, 0.0, 0.0],
                        target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='mmdet.GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0))


def tiny_fiber_config(grounding_task: str = 'rec', use_dcn: bool = False) -> dict:
    """A very small FIBER detector: the tiny fusion backbone, a 32-wide FPN (P3-P7) and a 1-block DyHead."""
    backbone = tiny_fiber_backbone_config()
    return dict(
        type='FIBER', grounding_task=grounding_task,
        data_preprocessor=dict(type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
        backbone=backbone,
        neck=dict(type='mmdet.FPN', in_channels=[32, 64, 128], out_channels=32, start_level=0,
                  add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
        bbox_head=fiber_head_config(32, num_dyhead_blocks=1, use_dcn=use_dcn),
        train_cfg=dict(assigner=dict(type='mmdet.ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1,
                       debug=False),
        test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.6),
                      max_per_img=100))
