"""X-VLM's ViT image encoder with mixed attention (arXiv:2111.08276, section 3.2)."""
import os.path as osp
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from mmengine.logging import MMLogger, print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from mmvlg.registry import MODELS

from ..utils.region_masks import interpolate_pos_embed, normalize_boxes_to_input, region_mask_from_boxes
from .swin_checkpoint import unwrap_state_dict

DEIT_BASE_URL = 'https://dl.fbaipublicfiles.com/deit/deit_base_patch16_224-b5f2ef4d.pth'


class ViTAttention(nn.Module):
    """Multi-head self-attention on ``F.scaled_dot_product_attention`` with an optional key mask.

    Parameter names (``qkv``, ``proj``) are those of the DeiT/timm layout.
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.,
                 proj_drop: float = 0.) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            x (Tensor): (bs, N, C).
            attn_mask (Tensor, optional): bool, broadcastable to (bs, heads, N, N), True where attention is
                allowed (X-VLM: (bs, 1, 1, N) key masks).

        Returns:
            Tensor: (bs, N, C).
        """
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))


class ViTMlp(nn.Module):
    """Linear-GELU-Linear (``fc1``, ``fc2`` as in DeiT)."""

    def __init__(self, embed_dims: int, hidden_dims: int, drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class ViTBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x)); x + mlp(norm2(x))`` with stochastic depth."""

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float = 4., qkv_bias: bool = True,
                 drop: float = 0., attn_drop: float = 0., drop_path: float = 0., norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = ViTAttention(embed_dims, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.mlp = ViTMlp(embed_dims, int(embed_dims * mlp_ratio), drop)

    def forward(self, x: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), attn_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ViTPatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens (``proj`` as in DeiT)."""

    def __init__(self, patch_size: int, in_channels: int, embed_dims: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """(bs, 3, H, W) -> (bs, h*w, C) and (h, w) = (H // p, W // p)."""
        if x.size(-2) % self.patch_size or x.size(-1) % self.patch_size:
            raise ValueError(f'input size {tuple(x.shape[-2:])} is not a multiple of the patch size '
                             f'{self.patch_size}')
        x = self.proj(x)
        return x.flatten(2).transpose(1, 2), (x.size(2), x.size(3))


@MODELS.register_module()
class XVLMViT(BaseModule):
    r"""The ViT (DeiT layout) image encoder of `X-VLM <https://arxiv.org/abs/2111.08276>`_ with *mixed
    attention* in its last ``local_attn_depth`` blocks.

    .. code:: text

        images (B) ─ patch_embed + [CLS] + pos_embed ─ blocks 0 .. D-L-1 (once per image) ─┐
                                                                                             │ copy per region
        ┌──────────────────────────────────────────────────────────────────────────────────┘
        └─ [B full copies ; R region copies] ─ blocks D-L .. D-1 (region copies: key mask = [CLS] + the
           patches in their box) ─ norm ─ image (B, 1+N, C), region (R, 1+N, C)

    Each image pays one full pass; only the last ``local_attn_depth`` blocks run for its regions (the paper's
    memory saving). A region's [CLS] is its copy's output token 0. The patches of a box follow
    :func:`~mmvlg.models.utils.region_mask_from_boxes` (the authors' rule). With ``local_attn_depth=0`` the
    region tokens are the full image's (only ``region_mask`` differs).

    Parameter names are the DeiT checkpoint's (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
    ``blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``), which are also the X-VLM
    authors' ``vision_encoder.*`` names. The position embedding is resized (bicubic, [CLS] kept) when a
    checkpoint made for another resolution is loaded (``load_state_dict`` pre-hook) and at run time for an
    input of another size.

    Args:
        img_size (int | tuple): Size the position embedding is made for.
        patch_size (int): Patch size.
        in_channels (int): Input channels.
        embed_dims (int): Width.
        depth (int): Number of blocks.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP hidden width / ``embed_dims``.
        qkv_bias (bool): Bias in the qkv projection.
        drop_rate (float): Dropout after the position embedding, in the MLP and after the attention.
        attn_drop_rate (float): Attention-probability dropout.
        drop_path_rate (float): Stochastic depth, linearly increasing over the blocks.
        norm_eps (float): LayerNorm epsilon (1e-6 as DeiT).
        local_attn_depth (int): Blocks at the end with mixed attention (4 in X-VLM).
        pretrained (str, optional): Local DeiT checkpoint (e.g. ``deit_base_patch16_224-b5f2ef4d.pth``), the
            same as ``init_cfg=dict(type='Pretrained', checkpoint=...)``.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self, img_size=224, patch_size: int = 16, in_channels: int = 3, embed_dims: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4., qkv_bias: bool = True,
                 drop_rate: float = 0., attn_drop_rate: float = 0., drop_path_rate: float = 0.,
                 norm_eps: float = 1e-6, local_attn_depth: int = 4, pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('XVLMViT: give either pretrained or init_cfg, not both')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        if not 0 <= local_attn_depth <= depth:
            raise ValueError(f'XVLMViT: local_attn_depth={local_attn_depth} must be in [0, depth={depth}]')
        img_hw = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.embed_dims = embed_dims
        self.depth = depth
        self.local_attn_depth = local_attn_depth
        self.patch_size = patch_size
        self.grid_hw = (img_hw[0] // patch_size, img_hw[1] // patch_size)
        self.patch_embed = ViTPatchEmbed(patch_size, in_channels, embed_dims)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid_hw[0] * self.grid_hw[1], embed_dims))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList([
            ViTBlock(embed_dims, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, dpr[i], norm_eps)
            for i in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.register_load_state_dict_pre_hook(self._resize_pos_embed_hook)

    # ---------------------------------------------------------------- weights
    def _resize_pos_embed_hook(self, module, state_dict, prefix, *args) -> None:
        key = prefix + 'pos_embed'
        if key in state_dict and state_dict[key].shape != self.pos_embed.shape:
            src = state_dict[key]
            if src.dim() == 2:
                src = src.unsqueeze(0)
            if src.size(-1) != self.embed_dims:
                return  # let load_state_dict report the size mismatch
            state_dict[key] = interpolate_pos_embed(src, self.grid_hw)

    def init_weights(self) -> None:
        """Truncated-normal initialization (std 0.02), then the DeiT checkpoint of ``init_cfg`` if any."""
        trunc_normal_(self.pos_embed, std=.02)
        trunc_normal_(self.cls_token, std=.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        cfg = self.init_cfg or {}
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            self.load_deit_checkpoint(cfg['checkpoint'], prefix=cfg.get('prefix'))
        self._is_init = True

    def load_deit_checkpoint(self, checkpoint: str, prefix: Optional[str] = None) -> Tuple[list, list]:
        """Load a DeiT/timm ViT checkpoint (``model``/``state_dict`` wrappers unwrapped, ``head*``/``dist_token``
        dropped with a log line; the position embedding is resized to this model's grid).

        Args:
            checkpoint (str): Local path (or a URI MMEngine's ``CheckpointLoader`` reads, loaded with
                ``weights_only`` by mmvlg's safe loaders).
            prefix (str, optional): Take only the keys under this prefix (e.g. ``'vision_encoder.'``).

        Returns:
            tuple: ``(missing_keys, unexpected_keys)``.

        Raises:
            FileNotFoundError: A local path that does not exist, with a hint where DeiT-B/16 comes from.
        """
        from mmengine.runner.checkpoint import CheckpointLoader
        if '://' not in checkpoint and not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'XVLMViT: the pre-trained checkpoint {checkpoint!r} (init_cfg.checkpoint / pretrained) does not '
                f'exist. X-VLM initializes its ViT-B/16 from DeiT-B: download {DEIT_BASE_URL} and set the path, '
                'or set init_cfg=None / pretrained=None to start from random weights.')
        logger = MMLogger.get_current_instance()
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu', logger=logger)
        state = dict(unwrap_state_dict(ckpt, keys=('model', 'state_dict', 'module')))
        if prefix:
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        dropped = sorted(k for k in state if k.startswith(('head.', 'head_dist.', 'fc_norm.', 'pre_logits.'))
                         or k == 'dist_token')
        for k in dropped:
            del state[k]
        missing, unexpected = self.load_state_dict(state, strict=False)
        print_log(f'XVLMViT: loaded {checkpoint}: {len(state) - len(unexpected)} tensors; dropped (classifier) '
                  f'{dropped}; missing {list(missing)}; unexpected {list(unexpected)}', logger=logger)
        return list(missing), list(unexpected)

    # ---------------------------------------------------------------- forward
    def embed(self, inputs: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Patch embedding + [CLS] + position embedding (resized for another grid) + dropout.

        Args:
            inputs (Tensor): (B, 3, H, W).

        Returns:
            tuple: tokens (B, 1 + h*w, C) and the grid (h, w).
        """
        x, grid_hw = self.patch_embed(inputs)
        x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], 1)
        x = x + interpolate_pos_embed(self.pos_embed, grid_hw, self.grid_hw)
        return self.pos_drop(x), grid_hw

    def forward_blocks(self, x: Tensor, start: int = 0, end: Optional[int] = None,
                       key_mask: Optional[Tensor] = None) -> Tensor:
        """Blocks ``start .. end-1``.

        Args:
            x (Tensor): (bs, N, C).
            key_mask (Tensor, optional): (bs, N) bool, True at the keys each sequence may attend to.

        Returns:
            Tensor: (bs, N, C).
        """
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        for blk in self.blocks[start:end]:
            x = blk(x, attn_mask)
        return x

    def forward(self, inputs: Tensor) -> Tensor:
        """Full attention.

        Args:
            inputs (Tensor): (B, 3, H, W), H and W multiples of the patch size.

        Returns:
            Tensor: (B, 1 + N, C) with N = (H/p)(W/p); token 0 is the [CLS].
        """
        x, _ = self.embed(inputs)
        return self.norm(self.forward_blocks(x))

    def forward_regions(self, inputs: Tensor, boxes: Tensor, image_index: Tensor,
                        valid_hw: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Mixed attention: one full pass per image, region copies in the last ``local_attn_depth`` blocks.

        Args:
            inputs (Tensor): (B, 3, H, W).
            boxes (Tensor): (R, 4) normalized x1, y1, x2, y2 in [0, 1] of each image's valid area.
            image_index (Tensor): (R,) long, the image of each region.
            valid_hw (Tensor, optional): (B, 2) valid (unpadded) height and width of each image in pixels;
                None: the whole input is valid (X-VLM resizes every image to the input size).

        Returns:
            dict: ``image`` (B, 1+N, C) the full-image tokens (equal to ``forward(inputs)``), ``region``
            (R, 1+N, C) each region copy's tokens (token 0: the region [CLS]), ``region_mask`` (R, 1+N) bool,
            True at the [CLS] and the patches inside the box.

        Raises:
            ValueError: A box outside the image or of zero area, or a bad ``image_index``.
        """
        image_index = _check_image_index(image_index, boxes, inputs.size(0))
        x, grid_hw = self.embed(inputs)
        if valid_hw is not None:
            boxes = normalize_boxes_to_input(boxes, valid_hw.to(inputs.device)[image_index], inputs.shape[-2:])
        region_mask = region_mask_from_boxes(boxes, grid_hw)
        split = self.depth - self.local_attn_depth
        x = self.forward_blocks(x, 0, split)
        b = x.size(0)
        if self.local_attn_depth == 0 or image_index.numel() == 0:
            x = self.norm(x)
            return dict(image=x, region=x[image_index], region_mask=region_mask)
        x = torch.cat([x, x[image_index]], 0)
        key_mask = torch.cat([region_mask.new_ones(b, region_mask.size(1)), region_mask], 0)
        x = self.norm(self.forward_blocks(x, split, None, key_mask))
        return dict(image=x[:b], region=x[b:], region_mask=region_mask)


def _check_image_index(image_index: Tensor, boxes: Tensor, num_images: int) -> Tensor:
    if not isinstance(image_index, Tensor) or image_index.dim() != 1:
        raise ValueError('image_index must be a (R,) long tensor')
    if image_index.numel() != (boxes.size(0) if isinstance(boxes, Tensor) and boxes.dim() == 2 else -1):
        raise ValueError(f'image_index has {image_index.numel()} entries for '
                         f'{tuple(boxes.shape) if isinstance(boxes, Tensor) else boxes} boxes')
    image_index = image_index.long().to(boxes.device)
    if image_index.numel() and (int(image_index.min()) < 0 or int(image_index.max()) >= num_images):
        raise ValueError(f'image_index {image_index.tolist()} out of range for a batch of {num_images} images')
    return image_index


__all__ = ['XVLMViT', 'ViTBlock', 'ViTAttention']
