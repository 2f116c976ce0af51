"""FIBER: fusion in the backbone (arXiv:2206.07643, section 3.1)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmdet.models.backbones import SwinTransformer
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS

from ..layers.gated_cross_attention import GatedCrossAttention
from .swin_checkpoint import load_swin_checkpoint


def shift_window_self_attention(msa: nn.Module, query: Tensor, hw_shape: Tuple[int, int],
                                 shift: Optional[int] = None) -> Tensor:
    """The (shifted-)window self-attention of an mmdet ``ShiftWindowMSA`` without its final stochastic-depth
    drop: FIBER adds the gated cross-attention to this output, then applies the drop to the sum.

    Args:
        msa (nn.Module): ``mmdet.models.backbones.swin.ShiftWindowMSA``.
        query (Tensor): (bs, H*W, C), already normalized by the block's ``norm1``.
        hw_shape (tuple): (H, W).
        shift (int, optional): Shift to use instead of ``msa.shift_size`` (0: no shift).

    Returns:
        Tensor: (bs, H*W, C).
    """
    b, n, c = query.shape
    h, w = hw_shape
    ws, shift = msa.window_size, msa.shift_size if shift is None else shift
    query = query.view(b, h, w, c)
    pad_r, pad_b = (ws - w % ws) % ws, (ws - h % ws) % ws
    query = F.pad(query, (0, 0, 0, pad_r, 0, pad_b))
    hp, wp = query.shape[1], query.shape[2]
    attn_mask = None
    if shift > 0:
        query = torch.roll(query, shifts=(-shift, -shift), dims=(1, 2))
        img_mask = torch.zeros((1, hp, wp, 1), device=query.device)
        slices = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
        cnt = 0
        for hs in slices:
            for wsl in slices:
                img_mask[:, hs, wsl, :] = cnt
                cnt += 1
        mask_windows = msa.window_partition(img_mask).view(-1, ws * ws)
        attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
        attn_mask = attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(attn_mask == 0, float(0.0))
    windows = msa.window_partition(query).view(-1, ws * ws, c)
    windows = msa.w_msa(windows, mask=attn_mask).view(-1, ws, ws, c)
    x = msa.window_reverse(windows, hp, wp)
    if shift > 0:
        x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
    return x[:, :h, :w, :].reshape(b, h * w, c)


@MODELS.register_module()
class FIBERBackbone(BaseModule):
    r"""Fusion in the backbone of `FIBER <https://arxiv.org/abs/2206.07643>`_: a Swin Transformer and a
    RoBERTa (any BERT-like Hugging Face encoder) whose top ``num_fusion_layers`` layers each get a gated
    cross-attention (:class:`~mmvlg.models.layers.GatedCrossAttention`), image-to-text in the Swin blocks and
    text-to-image in the text layers:

    .. code:: text

        img ─ patch_embed ─ Swin blocks 0 .. B-N-1 ─┬─ block B-N ─┬─ ... ─ block B-1 ─┬─ norm_i per out stage
                                                    │      ╳      │         ╳         │   -> multi-scale feats
        text ─ embeddings ─ layers 0 .. L-N-1 ──────┴─ layer L-N ─┴─ ... ─ layer L-1 ─┴─ text feats (bs, L, C)

    The two streams run interleaved: fused step j runs Swin block ``B-N+j`` (image queries, keys/values from
    the text *input* of text layer ``L-N+j``) and text layer ``L-N+j`` (text queries, keys/values from the
    image *input* of that Swin block), so each fused layer attends to the other modality's previous layer
    output, as in the authors' code (coarse-grained and fine-grained "v3"). Each fused layer computes (eq. 1)
    ``x~ = SelfAtt(x); x = x + x~ + alpha * CrossAtt(x~, y); x = x + FFN(x)`` with the host layer's own
    normalization (pre-norm Swin: stochastic depth on ``x~ + alpha * CrossAtt``; post-norm RoBERTa: LayerNorm
    after the sum). With ``alpha = 0`` (the initialization) or ``fusion=False`` the outputs are those of the
    uni-modal backbones (dual-encoder mode).

    Pretrained weights load by local path and the cross-attention parameters start fresh: the Swin from
    ``visual_checkpoint`` (MMDetection, timm or official keys, see
    :func:`~mmvlg.models.backbones.swin_checkpoint.load_swin_checkpoint`) or from ``visual.init_cfg``;
    RoBERTa from ``language_model.name_or_path``.

    Differences from the authors' code, on purpose: the text-to-image attention ignores padded image positions
    of a batch (``mask_image_padding``; the authors attend to them). Three more are options, for the authors'
    coarse-grained checkpoints (``tools/model_converters/fiber_to_mmvlg.py``): with fusion, that code skips the
    output LayerNorm of the last RoBERTa layer (``fused_last_text_norm=False``) and reads the last Swin stage
    without its output LayerNorm (``fused_visual_out_norm=False``), and its Swin (the official one, built for a
    fixed input size) does not shift the windows of a stage whose feature map fits in one window
    (``shift_single_window=False``; mmdet's Swin shifts them, with the attention mask of the shifted regions).

    Args:
        visual (dict): The Swin Transformer (``mmdet.SwinTransformer`` or a subclass).
        language_model (dict): The text encoder (:class:`~mmvlg.models.language_models.HFTextEncoder`).
        num_fusion_layers (int): N, the fused layers of each backbone (6 in the paper).
        visual_checkpoint (str, optional): Swin weights to load in :meth:`init_weights`.
        visual_checkpoint_format (str): ``'auto'``, ``'mmdet'``, ``'timm'`` or ``'official'``.
        i2t_attn_drop (float): Attention dropout of the image-to-text attention (Swin's, 0 in FIBER).
        i2t_proj_drop (float): Output dropout of the image-to-text attention.
        mask_image_padding (bool): Mask padded image positions in the text-to-image attention.
        with_cp (bool): Gradient checkpointing of every Swin block and every text layer.
        fused_last_text_norm (bool): With fusion, apply the output LayerNorm of the last text layer. Defaults to
            True; False as the authors' coarse-grained model.
        fused_visual_out_norm (bool): With fusion, apply the Swin's output LayerNorms (``norm{i}``) to the
            image features. Defaults to True; False as the authors' coarse-grained model. Without fusion they are
            always applied.
        shift_single_window (bool): Shift the windows of a block whose feature map fits in one window (mmdet's
            Swin). Defaults to True; False as the official Swin that the authors' coarse-grained model uses
            (e.g. its last stage: 12x12 tokens, window 12).
        i2t_query_norm (bool): LayerNorm the queries of the image-to-text attention. Defaults to True (the
            authors' coarse-grained model and fine-grained "v3" fusion, their RefCOCO models); False as their
            fine-grained "v2" fusion (their COCO, LVIS and fine-grained pre-training models).
        alpha_init (float): Initial value of every fusion gate. Defaults to 0, the paper's: the fused backbone
            starts as the two uni-modal ones, which keeps pre-trained backbones intact. A model trained from
            scratch has nothing to keep, and closed gates only slow the start of its fusion.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 visual: ConfigType,
                 language_model: ConfigType,
                 num_fusion_layers: int = 6,
                 visual_checkpoint: Optional[str] = None,
                 visual_checkpoint_format: str = 'auto',
                 i2t_attn_drop: float = 0.0,
                 i2t_proj_drop: float = 0.0,
                 mask_image_padding: bool = True,
                 with_cp: bool = False,
                 fused_last_text_norm: bool = True,
                 fused_visual_out_norm: bool = True,
                 shift_single_window: bool = True,
                 i2t_query_norm: bool = True,
                 alpha_init: float = 0.0,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.visual = MODELS.build(visual)
        if not isinstance(self.visual, SwinTransformer):
            raise TypeError(f'FIBERBackbone: visual must be an mmdet SwinTransformer, got {type(self.visual)}')
        self.language_model = MODELS.build(language_model)
        self.visual_checkpoint = visual_checkpoint
        self.visual_checkpoint_format = visual_checkpoint_format
        self.mask_image_padding = mask_image_padding
        self.with_cp = with_cp
        self.fused_last_text_norm = fused_last_text_norm
        self.fused_visual_out_norm = fused_visual_out_norm
        self.shift_single_window = shift_single_window
        self.blocks = [blk for stage in self.visual.stages for blk in stage.blocks]
        text_layers = self.text_layers
        if not 0 <= num_fusion_layers <= min(len(self.blocks), len(text_layers)):
            raise ValueError(f'num_fusion_layers={num_fusion_layers} must be in [0, min({len(self.blocks)} Swin '
                             f'blocks, {len(text_layers)} text layers)]')
        self.num_fusion_layers = num_fusion_layers
        if with_cp:
            for blk in self.blocks:
                blk.with_cp = True
        text_cfg = self.language_model.model.config
        self.text_dims = text_cfg.hidden_size
        self.i2t_attns = nn.ModuleList()
        self.t2i_attns = nn.ModuleList()
        for blk in self.blocks[len(self.blocks) - num_fusion_layers:]:
            dims, heads = blk.norm1.normalized_shape[0], blk.attn.w_msa.num_heads
            self.i2t_attns.append(GatedCrossAttention(dims, self.text_dims, heads, attn_drop=i2t_attn_drop,
                                                      proj_drop=i2t_proj_drop, query_norm=i2t_query_norm,
                                                      alpha_init=alpha_init))
            self.t2i_attns.append(GatedCrossAttention(
                self.text_dims, dims, text_cfg.num_attention_heads, attn_drop=text_cfg.attention_probs_dropout_prob,
                proj_drop=text_cfg.hidden_dropout_prob, query_norm=False, alpha_init=alpha_init))
        self.out_channels = [self.visual.num_features[i] for i in self.visual.out_indices]

    @property
    def text_layers(self) -> nn.ModuleList:
        return self.language_model.layers

    def init_weights(self) -> None:
        """Initialize the two backbones (their own ``init_cfg``/pretrained weights), then load
        ``visual_checkpoint``; the cross-attention parameters keep their fresh initialization (alpha = 0)."""
        super().init_weights()
        if self.visual_checkpoint is not None:
            load_swin_checkpoint(self.visual, self.visual_checkpoint, self.visual_checkpoint_format)

    def alphas(self) -> Dict[str, List[float]]:
        """The gates of the fused layers: ``{'i2t': [...], 't2i': [...]}``."""
        return dict(i2t=[float(m.alpha.detach()) for m in self.i2t_attns],
                    t2i=[float(m.alpha.detach()) for m in self.t2i_attns])

    # ---------------------------------------------------------------------------------------- layers
    def _shift(self, blk: nn.Module, hw: Tuple[int, int]) -> int:
        """The window shift of a block on an (H, W) map: 0 when the map fits in one window and
        ``shift_single_window`` is False, else the block's own."""
        ws = blk.attn.window_size
        if not self.shift_single_window and hw[0] <= ws and hw[1] <= ws:
            return 0
        return blk.attn.shift_size

    def _plain_swin_block(self, blk: nn.Module, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        """A Swin block without fusion (mmdet's, or the same with the shift of :meth:`_shift`)."""
        shift = self._shift(blk, hw)
        if shift == blk.attn.shift_size:
            return blk(x, hw)

        def inner(x):
            x = x + blk.attn.drop(shift_window_self_attention(blk.attn, blk.norm1(x), hw, shift))
            return blk.ffn(blk.norm2(x), identity=x)

        if blk.with_cp and x.requires_grad:
            return cp.checkpoint(inner, x, use_reentrant=False)
        return inner(x)

    def _swin_block(self, blk: nn.Module, x: Tensor, hw: Tuple[int, int], cross: GatedCrossAttention,
                    text: Tensor, text_pad: Tensor) -> Tensor:
        """A Swin block with image-to-text fusion: ``x + drop(SA + alpha * CA(SA, text)) -> + FFN``."""
        shift = self._shift(blk, hw)

        def inner(x, text):
            sa = shift_window_self_attention(blk.attn, blk.norm1(x), hw, shift)
            x = x + blk.attn.drop(cross(sa, text, text_pad))
            return blk.ffn(blk.norm2(x), identity=x)

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(inner, x, text, use_reentrant=False)
        return inner(x, text)

    def _text_layer(self, index: int, h: Tensor, attn_mask, cross: Optional[GatedCrossAttention] = None,
                    image: Optional[Tensor] = None, image_pad: Optional[Tensor] = None,
                    out_norm: bool = True) -> Tensor:
        """Text layer ``index`` (post-norm, :meth:`HFTextEncoder.forward_layer
        <mmvlg.models.language_models.HFTextEncoder.forward_layer>`); with ``cross``, text-to-image fusion:
        ``LN(h + SA + alpha * CA(SA, image)) -> FFN`` (the FFN's output LayerNorm only with ``out_norm``)."""
        lm = self.language_model

        def plain(h):
            return lm.forward_layer(index, h, attn_mask)

        def fused(h, image):
            return lm.forward_layer(index, h, attn_mask, self_attn_fusion=lambda sa: cross(sa, image, image_pad),
                                    output_norm=out_norm)

        if cross is None:
            return cp.checkpoint(plain, h, use_reentrant=False) if self.with_cp and h.requires_grad else plain(h)
        if self.with_cp and h.requires_grad:
            return cp.checkpoint(fused, h, image, use_reentrant=False)
        return fused(h, image)

    def _image_pad(self, img_padding_mask: Optional[Tensor], hw: Tuple[int, int]) -> Optional[Tensor]:
        if img_padding_mask is None or not self.mask_image_padding:
            return None
        return F.interpolate(img_padding_mask[None].float(), size=hw)[0].bool().flatten(1)

    # --------------------------------------------------------------------------------------- forward
    def forward(self, img: Tensor, texts: Optional[Sequence[str]], img_padding_mask: Optional[Tensor] = None,
                fusion: bool = True, tokens: Optional[Dict[str, Tensor]] = None
                ) -> Tuple[Tuple[Tensor, ...], Dict[str, Tensor]]:
        """Encode images and texts, with fusion (fusion encoder) or without (dual encoder).

        Args:
            img (Tensor): (bs, 3, H, W).
            texts (list[str]): bs texts, tokenized by the language model's tokenizer.
            img_padding_mask (Tensor, optional): (bs, H, W) bool, True at padded pixels.
            fusion (bool): Run the cross-attentions. Defaults to True.
            tokens (dict, optional): The texts already tokenized, as :meth:`HFTextEncoder.tokenize
                <mmvlg.models.language_models.HFTextEncoder.tokenize>` returns them (``input_ids``,
                ``attention_mask``, ``offsets``; e.g. with masked ids for MLM); ``texts`` is then ignored.

        Returns:
            tuple: Multi-scale image features, one (bs, C_i, H_i, W_i) per ``visual.out_indices``, and the text
            dict of :meth:`HFTextEncoder.forward <mmvlg.models.language_models.HFTextEncoder.forward>`:
            ``embeds`` (bs, L, C_t), ``mask`` (bs, L) True at real tokens, ``offsets`` (bs, L, 2),
            ``input_ids`` (bs, L), ``pooled`` (bs, C_t) the first token's state.
        """
        tok = tokens if tokens is not None else self.language_model.tokenize(list(texts), device=img.device)
        text = self.language_model.embed(tok['input_ids'])
        attn_mask = self.language_model.self_attention_mask(text, tok['attention_mask'])
        text_pad = ~tok['attention_mask'].bool()
        n_fuse = self.num_fusion_layers if fusion else 0
        layers = self.text_layers
        first_text, first_block = len(layers) - n_fuse, len(self.blocks) - n_fuse
        for index in range(first_text):
            text = self._text_layer(index, text, attn_mask)

        swin = self.visual
        x, hw = swin.patch_embed(img)
        if swin.use_abs_pos_embed:
            x = x + swin.absolute_pos_embed
        x = swin.drop_after_pos(x)
        outs, k = [], 0
        for i, stage in enumerate(swin.stages):
            for blk in stage.blocks:
                step = k - first_block
                if step >= 0:
                    new_x = self._swin_block(blk, x, hw, self.i2t_attns[step], text, text_pad)
                    last = first_text + step == len(layers) - 1
                    text = self._text_layer(first_text + step, text, attn_mask, self.t2i_attns[step], x,
                                            self._image_pad(img_padding_mask, hw),
                                            out_norm=self.fused_last_text_norm or not last)
                    x = new_x
                else:
                    x = self._plain_swin_block(blk, x, hw)
                k += 1
            out, out_hw = x, hw
            if stage.downsample is not None:
                x, hw = stage.downsample(x, hw)
            if i in swin.out_indices:
                if self.fused_visual_out_norm or n_fuse == 0:
                    out = getattr(swin, f'norm{i}')(out)
                outs.append(out.view(-1, *out_hw, swin.num_features[i]).permute(0, 3, 1, 2).contiguous())
        text_out = dict(embeds=text, mask=tok['attention_mask'].bool(), offsets=tok['offsets'],
                        input_ids=tok['input_ids'], pooled=text[:, 0])
        return tuple(outs), text_out
