"""The small MLP block that vision-language heads share (ITM, VQA, box regression, projections)."""
from typing import Optional

from mmcv.cnn import build_activation_layer, build_norm_layer
from mmdet.utils import ConfigType, OptConfigType
from torch import Tensor, nn

from mmvlg.registry import MODELS


@MODELS.register_module()
class MLPBlock(nn.Sequential):
    """``Linear(in, hidden) - LayerNorm - GELU - Linear(hidden, out)``: the classifier of FIBER's VQA head and
    X-VLM's ``build_mlp`` (its ITM, box and VQA heads).

    The sub-modules are indexed 0 (first Linear), 1 (norm), 2 (activation) and 3 (last Linear), so a head that
    holds one as ``classifier`` has the keys ``classifier.0.weight``, ``classifier.1.weight``, ...
    ``classifier.3.bias``.

    Args:
        in_dims (int): Input width.
        hidden_dims (int, optional): Hidden width. Defaults to ``in_dims``.
        out_dims (int, optional): Output width. Defaults to ``in_dims``.
        norm_cfg (dict, optional): The norm between the two linear layers (mmcv's ``build_norm_layer``;
            ``dict(type='LN')``, eps 1e-5). None: no norm (an ``Identity`` at index 1).
        act_cfg (dict): The activation (mmcv's ``build_activation_layer``). Defaults to ``dict(type='GELU')``.
    """

    def __init__(self, in_dims: int, hidden_dims: Optional[int] = None, out_dims: Optional[int] = None,
                 norm_cfg: OptConfigType = dict(type='LN'), act_cfg: ConfigType = dict(type='GELU')) -> None:
        hidden_dims = hidden_dims or in_dims
        out_dims = out_dims or in_dims
        norm = build_norm_layer(norm_cfg, hidden_dims)[1] if norm_cfg is not None else nn.Identity()
        super().__init__(nn.Linear(in_dims, hidden_dims), norm, build_activation_layer(act_cfg),
                         nn.Linear(hidden_dims, out_dims))
        self.in_dims, self.hidden_dims, self.out_dims = in_dims, hidden_dims, out_dims

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_dims) -> (..., out_dims)."""
        return super().forward(x)


def build_projection(cfg: OptConfigType, in_dims: int, out_dims: int) -> nn.Module:
    """A projection from ``in_dims`` to ``out_dims`` given by a config: ``dict(type='Linear', bias=True)`` (a
    plain ``nn.Linear``), any registered module taking ``in_dims``/``out_dims`` (e.g. ``dict(type='MLPBlock',
    hidden_dims=...)``), or None (``nn.Identity``; then ``in_dims`` must equal ``out_dims``)."""
    if cfg is None:
        if in_dims != out_dims:
            raise ValueError(f'no projection (None) from width {in_dims} to width {out_dims}')
        return nn.Identity()
    cfg = dict(cfg)
    if cfg.get('type') == 'Linear':
        cfg.pop('type')
        return nn.Linear(in_dims, out_dims, **cfg)
    return MODELS.build(dict(dict(in_dims=in_dims, out_dims=out_dims), **cfg))
