"""X-VLM's released Swin image encoder: last-stage tokens with a mean [CLS] and box-mask region pooling."""
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmdet.models.backbones import SwinTransformer
from mmengine.logging import MMLogger, print_log
from mmengine.model.weight_init import constant_init, trunc_normal_, trunc_normal_init
from torch import Tensor, nn

from mmvlg.registry import MODELS

from ..utils.region_masks import (
    masked_mean,
    normalize_boxes_to_input,
    region_mask_from_boxes,
    resize_relative_position_tables,
)
from .swin_checkpoint import swin_to_mmdet, unwrap_state_dict
from .xvlm_vit import _check_image_index

SWIN_BASE_URL = ('https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
                 'swin_base_patch4_window7_224_22k.pth')


@MODELS.register_module()
class XVLMSwin(SwinTransformer):
    r"""The Swin image encoder of the released `X-VLM <https://arxiv.org/abs/2111.08276>`_ checkpoints
    (Swin-B: 224 px / window 7 for pre-training, 384 px / window 12 for fine-tuning), on mmdet's
    :class:`~mmdet.models.backbones.SwinTransformer`.

    .. code:: text

        images (B) ─ Swin stages ─ norm3 ─ last-stage tokens x (B, N, C) ─┬─ [mean(x) ; x]            -> image
                                                                           └─ per region r of image b:
                                                                              [masked_mean(x_b, box_r) ; x_b] -> region

    There is no mixed attention in this variant (the authors' Swin runs each image once and pools the
    regions from its last stage). The boxes map to the last-stage grid (stride 32) with
    :func:`~mmvlg.models.utils.region_mask_from_boxes`.

    As in the authors' Swin, a block whose stage map (at ``img_size``) fits in one window does not shift
    its window (``shift_single_window=False``; mmdet's Swin would shift it with the shifted-window mask).
    Relative-position bias tables made for another window (the 224 px / window 7 Swin-B or X-VLM
    pre-training in a 384 px / window 12 model) are resized bicubically whenever a state dict is loaded
    (``load_state_dict`` pre-hook, so a runner's ``load_from`` works too), and the
    ``relative_position_index`` buffers are this model's.

    Args:
        img_size (int): Input size the windows are planned for (``pretrain_img_size`` of mmdet's Swin).
        embed_dims (int): Width of the first stage (128 for Swin-B); the output width ``self.embed_dims`` is
            ``embed_dims * 2 ** (num_stages - 1)``.
        depths (tuple): Blocks per stage.
        num_heads (tuple): Heads per stage.
        window_size (int): Window (7 at 224 px, 12 at 384 px).
        shift_single_window (bool): Shift the window of blocks whose map fits in one window (mmdet's way).
        pretrained (str, optional): A Swin checkpoint (official, timm or mmdet layout; e.g.
            ``swin_base_patch4_window7_224_22k.pth``), the same as ``init_cfg=dict(type='Pretrained',
            checkpoint=..., prefix=None)``.
        **kwargs: The other arguments of mmdet's ``SwinTransformer`` (``drop_path_rate``, ``with_cp``, ...).
    """

    def __init__(self, img_size: int = 224, embed_dims: int = 128, depths: Sequence[int] = (2, 2, 18, 2),
                 num_heads: Sequence[int] = (4, 8, 16, 32), window_size: int = 7, patch_size: int = 4,
                 drop_path_rate: float = 0.1, shift_single_window: bool = False, pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None, **kwargs) -> None:
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('XVLMSwin: give either pretrained or init_cfg, not both')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        for key in ('out_indices', 'pretrain_img_size', 'convert_weights', 'pretrained'):
            if key in kwargs:
                raise ValueError(f'XVLMSwin sets {key} itself')
        num_stages = len(depths)
        strides = tuple(kwargs.pop('strides', (patch_size, ) + (2, ) * (num_stages - 1)))
        super().__init__(pretrain_img_size=img_size, embed_dims=embed_dims, patch_size=patch_size,
                         window_size=window_size, depths=depths, num_heads=num_heads, strides=strides,
                         out_indices=(num_stages - 1, ), drop_path_rate=drop_path_rate, **kwargs)
        self.init_cfg = init_cfg  # loaded by init_weights below, not by mmdet's
        self.embed_dims = self.num_features[-1]
        self.window_size = window_size
        if not shift_single_window:
            size = img_size
            for i, stage in enumerate(self.stages):
                size = size // strides[i]
                if size <= window_size:
                    for blk in stage.blocks:
                        blk.attn.shift_size = 0
        self.register_load_state_dict_pre_hook(self._resize_tables_hook)

    def train(self, mode: bool = True) -> 'XVLMSwin':
        """mmdet's ``train`` (frozen stages kept frozen), returning the module as ``nn.Module.train`` does."""
        super().train(mode)
        return self

    # ---------------------------------------------------------------- weights
    def _resize_tables_hook(self, module, state_dict, prefix, *args) -> None:
        if any(k.startswith(prefix) and k.endswith(('relative_position_bias_table', 'relative_position_index'))
               for k in state_dict):
            resize_relative_position_tables(state_dict, self.state_dict(), prefix)

    def init_weights(self) -> None:
        """Truncated-normal initialization, then the checkpoint of ``init_cfg`` (``Pretrained``) if any."""
        if self.use_abs_pos_embed:
            trunc_normal_(self.absolute_pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0.)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, 1.0)
        cfg = self.init_cfg or {}
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            self.load_swin_checkpoint(cfg['checkpoint'], prefix=cfg.get('prefix'))
        self._is_init = True

    def load_swin_checkpoint(self, checkpoint: str, prefix: Optional[str] = None) -> Tuple[list, list]:
        """Load a Swin checkpoint (official, timm or mmdet keys; :func:`~mmvlg.models.backbones.swin_to_mmdet`).

        The classifier (``head.*``) is dropped and the official final ``norm`` becomes the last stage's
        ``norm{i}``; bias tables are resized to this window.

        Args:
            checkpoint (str): Local path (or a URI MMEngine's ``CheckpointLoader`` reads, ``weights_only``).
            prefix (str, optional): Take only the keys under this prefix (e.g. ``'vision_encoder.'`` of an
                X-VLM checkpoint in the authors' layout).

        Returns:
            tuple: ``(missing_keys, unexpected_keys)``.

        Raises:
            FileNotFoundError: A local path that does not exist, with a hint where Swin-B comes from.
        """
        from mmengine.runner.checkpoint import CheckpointLoader
        if '://' not in checkpoint and not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'XVLMSwin: the pre-trained checkpoint {checkpoint!r} (init_cfg.checkpoint / pretrained) does not '
                f'exist. X-VLM initializes its Swin-B from {SWIN_BASE_URL}: download it and set the path, or set '
                'init_cfg=None / pretrained=None to start from random weights.')
        logger = MMLogger.get_current_instance()
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu', logger=logger)
        ckpt = unwrap_state_dict(ckpt)
        if prefix:
            ckpt = {k[len(prefix):]: v for k, v in ckpt.items() if k.startswith(prefix)}
        state, fmt = swin_to_mmdet(dict(ckpt))
        last = f'norm{len(self.stages) - 1}'
        for name in ('weight', 'bias'):
            if f'norm.{name}' in state and f'{last}.{name}' not in state:
                state[f'{last}.{name}'] = state.pop(f'norm.{name}')
        dropped = sorted(k for k in state if k.startswith('head.'))
        for k in dropped:
            del state[k]
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith('relative_position_index')]
        print_log(f'XVLMSwin: loaded {checkpoint} ({fmt} keys): {len(state) - len(unexpected)} tensors; dropped '
                  f'(classifier) {dropped}; missing {missing}; unexpected {list(unexpected)}', logger=logger)
        return missing, list(unexpected)

    # ---------------------------------------------------------------- forward
    def forward_tokens(self, inputs: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Last-stage tokens after ``norm{i}``.

        Args:
            inputs (Tensor): (B, 3, H, W).

        Returns:
            tuple: tokens (B, h*w, C) in row-major order and the grid (h, w) (stride 32 for Swin-B).
        """
        out = super().forward(inputs)[-1]
        return out.flatten(2).transpose(1, 2), (out.size(2), out.size(3))

    def forward(self, inputs: Tensor) -> Tensor:
        """
        Args:
            inputs (Tensor): (B, 3, H, W).

        Returns:
            Tensor: (B, 1 + N, C); token 0 is the mean of the N last-stage tokens.
        """
        x, _ = self.forward_tokens(inputs)
        return torch.cat([x.mean(1, keepdim=True), x], 1)

    def forward_regions(self, inputs: Tensor, boxes: Tensor, image_index: Tensor,
                        valid_hw: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Region tokens by box-mask pooling of the last stage (one pass per image).

        Args:
            inputs (Tensor): (B, 3, H, W).
            boxes (Tensor): (R, 4) normalized x1, y1, x2, y2 in [0, 1] of each image's valid area.
            image_index (Tensor): (R,) long, the image of each region.
            valid_hw (Tensor, optional): (B, 2) valid height and width in pixels; None: the whole input.

        Returns:
            dict: ``image`` (B, 1+N, C) as ``forward``; ``region`` (R, 1+N, C), the tokens of the region's image
            with token 0 replaced by the mean of the tokens inside the box; ``region_mask`` (R, 1+N) bool, True at
            token 0 and the tokens inside the box.

        Raises:
            ValueError: A box outside the image or of zero area, or a bad ``image_index``.
        """
        image_index = _check_image_index(image_index, boxes, inputs.size(0))
        x, grid_hw = self.forward_tokens(inputs)
        if valid_hw is not None:
            boxes = normalize_boxes_to_input(boxes, valid_hw.to(inputs.device)[image_index], inputs.shape[-2:])
        region_mask = region_mask_from_boxes(boxes, grid_hw)
        image = torch.cat([x.mean(1, keepdim=True), x], 1)
        patches = x[image_index]
        region = torch.cat([masked_mean(patches, region_mask[:, 1:]).unsqueeze(1), patches], 1)
        return dict(image=image, region=region, region_mask=region_mask)
