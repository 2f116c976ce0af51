from typing import Sequence, Tuple

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS


@MODELS.register_module()
class LowLevelFusionNeck(BaseModule):
    """SiRi's low-level feature fusion followed by the 1x1 input projection of DETR.

    SiRi adds an earlier ResNet stage, brought to the last stage's size by two convolutions, to the last
    stage's output before projecting it to the transformer width. The paper says "the third stage through
    two dilated convolutions"; the authors' released code (qumengxue/siri-vg, ``models/mdetr.py``,
    ``add_feature``), which the released checkpoints use, takes ``layer2`` (512 channels for ResNet-101)
    through two 3x3 stride-2 convolutions (512->1024->2048, no normalization, no activation). This module
    follows the code; ``strides`` adapt it to backbones whose last stage is dilated.

    Args:
        in_channels (Sequence[int]): Channels of the (low, high) backbone outputs, e.g. (512, 2048).
        out_channels (int): Transformer width.
        mid_channels (int, optional): Channels between the two fusion convolutions; defaults to
            ``in_channels[1] // 2``.
        strides (tuple): Strides of the two fusion convolutions. Defaults to (2, 2).
        with_fusion (bool): If False, only the projection of the last input (plain MDETR).
    """

    def __init__(self, in_channels: Sequence[int] = (512, 2048), out_channels: int = 256,
                 mid_channels: int = None, strides: Tuple[int, int] = (2, 2), with_fusion: bool = True,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        low, high = in_channels[0], in_channels[-1]
        self.with_fusion = with_fusion
        if with_fusion:
            mid = mid_channels or high // 2
            self.add_feature = nn.Sequential(
                nn.Conv2d(low, mid, 3, stride=strides[0], padding=1),
                nn.Conv2d(mid, high, 3, stride=strides[1], padding=1))
        self.input_proj = nn.Conv2d(high, out_channels, 1)

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor]:
        """
        Args:
            inputs: Backbone outputs; the first is the low-level map (when fusing), the last the top one.

        Returns:
            tuple[Tensor]: One map (bs, out_channels, h, w) at the top map's resolution.
        """
        x = inputs[-1]
        if self.with_fusion:
            x = x + self.add_feature(inputs[0])
        return (self.input_proj(x), )
