"""Swin Transformer checkpoints of three key layouts (MMDetection, timm, the official release) -> the keys of
:class:`mmdet.models.backbones.SwinTransformer`."""
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple

from mmengine.logging import MMLogger, print_log
from torch import Tensor, nn

from ..utils.region_masks import interpolate_relative_position_table


def unwrap_state_dict(ckpt: dict, keys: Sequence[str] = ('state_dict', 'model', 'module')) -> Dict[str, Tensor]:
    """The tensors of a loaded checkpoint: descend into ``keys`` in turn (where present), strip ``module.``."""
    for key in keys:
        if isinstance(ckpt, dict) and key in ckpt and isinstance(ckpt[key], dict):
            ckpt = ckpt[key]
    state = OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in ckpt.items())
    return state


def swin_key_format(state: Dict[str, Tensor]) -> str:
    """``'mmdet'`` (``stages.*``, ``ffn.layers.*``), ``'official'`` (``layers.*``, downsampling at the end of a
    stage: ``layers.0.downsample``) or ``'timm'`` (``layers.*``, downsampling at the start of the next stage:
    ``layers.1.downsample``, timm >= 0.9)."""
    keys = [k[len('backbone.'):] if k.startswith('backbone.') else k for k in state]
    if any(k.startswith('stages.') for k in keys):
        return 'mmdet'
    if not any(k.startswith('layers.') for k in keys):
        raise ValueError('not a Swin Transformer checkpoint: no "stages.*" nor "layers.*" keys')
    if any(k.startswith('layers.0.downsample.') for k in keys):
        return 'official'
    return 'timm'


def swin_to_mmdet(state: Dict[str, Tensor], fmt: str = 'auto') -> Tuple[Dict[str, Tensor], str]:
    """Convert a Swin state dict to the keys of mmdet's ``SwinTransformer`` (no ``backbone.`` prefix).

    timm keys are first renamed to the official layout (timm >= 0.9 moved each patch merging to the start of
    the next stage; the merging order of the 2x2 neighbours is the official one), then mmdet's
    ``swin_converter`` maps official keys (and reorders the patch-merging weights for mmdet's ``nn.Unfold``).
    Classification heads and non-persistent buffers (``relative_position_index``, ``attn_mask``) are dropped.

    Returns:
        tuple: The converted state dict and the detected format.
    """
    from mmdet.models.backbones.swin import swin_converter
    state = unwrap_state_dict(state)
    fmt = swin_key_format(state) if fmt == 'auto' else fmt
    if fmt not in ('mmdet', 'official', 'timm'):
        raise ValueError(f'unknown Swin checkpoint format {fmt!r}')
    if fmt == 'mmdet':
        has_prefix = any(k.startswith('backbone.') for k in state)
        out = OrderedDict((k[len('backbone.'):] if has_prefix else k, v) for k, v in state.items()
                          if not has_prefix or k.startswith('backbone.'))
        return out, fmt
    state = OrderedDict((k, v) for k, v in state.items()
                        if 'relative_position_index' not in k and 'attn_mask' not in k)
    if fmt == 'timm':
        renamed = OrderedDict()
        for k, v in state.items():
            parts = k.split('.')
            if len(parts) > 3 and parts[0] == 'layers' and parts[2] == 'downsample':
                parts[1] = str(int(parts[1]) - 1)
            elif k.startswith('head.'):
                continue
            renamed['.'.join(parts)] = v
        state = renamed
    converted = swin_converter(state)
    return OrderedDict((k[len('backbone.'):], v) for k, v in converted.items()), fmt


def _resize_bias_tables(state: Dict[str, Tensor], model: nn.Module) -> None:
    """Bicubic resize of relative-position bias tables whose window size differs from the model's."""
    own = model.state_dict()
    for k in [k for k in state if k.endswith('relative_position_bias_table') and k in own]:
        src, dst = state[k], own[k]
        if src.shape == dst.shape or src.shape[1] != dst.shape[1]:
            continue
        state[k] = interpolate_relative_position_table(src, (int(round(dst.shape[0]**0.5)) + 1) // 2)


def load_swin_checkpoint(model: nn.Module, checkpoint: str, fmt: str = 'auto',
                         logger: Optional[MMLogger] = None) -> Tuple[list, list]:
    """Load a Swin checkpoint file (any of :func:`swin_key_format`'s layouts) into an mmdet ``SwinTransformer``
    (``strict=False``; the keys that did not match are logged and returned).

    Args:
        model (nn.Module): The ``SwinTransformer``.
        checkpoint (str): Local path (or any URI MMEngine's ``CheckpointLoader`` reads), loaded with
            ``weights_only`` where torch defaults to it.
        fmt (str): ``'auto'``, ``'mmdet'``, ``'official'`` or ``'timm'``.

    Returns:
        tuple: ``(missing_keys, unexpected_keys)``.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    logger = logger or MMLogger.get_current_instance()
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu', logger=logger)
    state, found = swin_to_mmdet(ckpt, fmt)
    _resize_bias_tables(state, model)
    if 'absolute_pos_embed' in state and hasattr(model, 'absolute_pos_embed'):
        state['absolute_pos_embed'] = state['absolute_pos_embed'].reshape(model.absolute_pos_embed.shape)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if 'relative_position_index' not in k]
    print_log(f'Swin checkpoint {checkpoint} ({found} keys): {len(state) - len(unexpected)} tensors loaded, '
              f'missing {missing}, unexpected {unexpected}', logger=logger)
    return missing, unexpected
