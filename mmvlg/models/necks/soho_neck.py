"""SOHO's visual neck (arXiv:2104.03135, section 3.2; the authors' released code for the order of its steps):
C5 feature map -> visual tokens of the single-stream transformer, through the visual dictionary."""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.layers import SinePositionalEncoding
from mmdet.utils import OptConfigType
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvlg.registry import MODELS

FUSIONS = ('gate', 'sum', 'none')


@MODELS.register_module()
class SOHONeck(BaseModule):
    r"""The neck of `SOHO <https://arxiv.org/abs/2104.03135>`_: from the backbone's last feature map to visual
    tokens, with the visual dictionary in between.

    .. code:: text

        C5 (B, C_in, H, W) ─ 2x2 max-pool ─ 1x1 conv (+ norm) ─ features v (B, C, h, w)     (the code's order)
              v ─ dictionary (nearest entry, moving-average update in training) ─ f(v) ─ [Linear] ─ e
              (e, v) ─ fusion ─ embedded (B, N = h*w, C)
                  'gate': softmax(1x1 conv [e; v]) over 2 channels: s_e * e + s_v * v     (the released code)
                  'sum':  e + v                                         (the code's neck without the gate)
                  'none': e                                             (the paper: the dictionary embedding)
        tokens(embedded, pos, mask):  LN(embedded with ``mask_embedding`` at the masked tokens + 2-D sine pos)

    :meth:`forward` runs once per image (by default the dictionary is updated once per image of the batch, from
    the valid tokens only, whereas the authors' code updates it from every token, padding included, of every copy
    of an image paired with its four texts: ``update_padding=True`` and ``forward(copies=4)`` do as the code);
    :meth:`tokens` then builds the
    transformer's visual tokens per (image, text) pair, where MVM masks differ. With ``use_dictionary=False``
    (SOHO's downstream tasks: "the dictionary's input features, not its embeddings"), ``embedded`` is ``v``
    itself and the dictionary is not touched.

    Args:
        in_channels (int): Channels of the backbone's last feature map (512 for ResNet-18, 2048 for R-101).
        out_channels (int): Width of the tokens (the transformer's hidden size, even: half of it encodes y and
            half x).
        dictionary (dict, optional): :class:`~mmvlg.models.layers.VisualDictionary` (``embed_dims`` is filled
            in). None: no dictionary (only ``use_dictionary=False`` works).
        fusion (str): ``'gate'``, ``'sum'`` or ``'none'`` (see above). Defaults to ``'gate'`` (the released
            code's ``SimpleVDforPreGate``).
        project_entries (bool): Map the dictionary embedding through a Linear(C, C) before the fusion (the
            code's ``pos_align``). Defaults to True.
        pool (bool): The 2x2 max-pool before the conv (the code's). Defaults to True.
        norm_cfg (dict, optional): Norm after the 1x1 conv and the gate conv (the code's R-18 config: SyncBN).
            Defaults to None (conv with bias, no norm).
        layer_norm_eps (float): Epsilon of the output LayerNorm. Defaults to 1e-5.
        update_padding (bool): Whether the dictionary update (in training) also counts the features at the
            padding of the batch's images, as the released code, which looks up and averages every position of
            the padded feature map. The padding's tokens stay masked out of the transformer and keep index -1
            and the usage statistics count the valid tokens either way. Defaults to False (valid tokens only).
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self, in_channels: int, out_channels: int, dictionary: OptConfigType = None, fusion: str = 'gate',
                 project_entries: bool = True, pool: bool = True, norm_cfg: OptConfigType = None,
                 layer_norm_eps: float = 1e-5, update_padding: bool = False, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if fusion not in FUSIONS:
            raise ValueError(f'SOHONeck: fusion must be one of {FUSIONS}, got {fusion!r}')
        if out_channels % 2:
            raise ValueError(f'SOHONeck: out_channels must be even (sine position encoding), got {out_channels}')
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.fusion, self.pool = fusion, bool(pool)
        self.update_padding = bool(update_padding)
        self.proj = ConvModule(in_channels, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None)
        self.dictionary = None
        if dictionary is not None:
            self.dictionary = MODELS.build(dict(dict(embed_dims=out_channels), **dictionary))
            if self.dictionary.embed_dims != out_channels:
                raise ValueError(f'SOHONeck: the dictionary is {self.dictionary.embed_dims}-d, the tokens '
                                 f'{out_channels}-d')
        self.entry_proj = nn.Linear(out_channels, out_channels) if project_entries and dictionary else None
        self.gate = (ConvModule(2 * out_channels, 2, 1, norm_cfg=norm_cfg, act_cfg=None)
                     if fusion == 'gate' and dictionary is not None else None)
        self.positional_encoding = SinePositionalEncoding(num_feats=out_channels // 2, normalize=True)
        self.mask_embedding = nn.Parameter(torch.zeros(out_channels))
        nn.init.normal_(self.mask_embedding)  # nn.Embedding's initialization, as the code's ``mask_emb``
        self.norm = nn.LayerNorm(out_channels, eps=layer_norm_eps)

    def project(self, feat: Tensor, padding: Optional[Tensor] = None) -> tuple:
        """Pool and project the feature map.

        Args:
            feat (Tensor): (B, C_in, H, W) the backbone's last feature map.
            padding (Tensor, optional): (B, H_img, W_img) bool, True at the padding of the input images
                (:func:`~mmvlg.models.utils.padding_mask`); None: no padding.

        Returns:
            tuple: features (B, C, h, w) and ``valid`` (B, h, w) bool (the padding's nearest resize).
        """
        if self.pool:
            feat = F.max_pool2d(feat, 2, stride=2)
        x = self.proj(feat)
        b, _, h, w = x.shape
        if padding is None:
            valid = x.new_ones(b, h, w, dtype=torch.bool)
        else:
            valid = F.interpolate((~padding).float()[:, None], size=(h, w), mode='nearest')[:, 0] > 0.5
        return x, valid

    def forward(self, feat: Tensor, padding: Optional[Tensor] = None, use_dictionary: bool = True,
                copies: int = 1) -> Dict[str, Tensor]:
        """The per-image part: features, dictionary lookup (and update in training), fusion, position encoding.

        Args:
            feat (Tensor): (B, C_in, H, W) the backbone's last feature map.
            padding (Tensor, optional): (B, H_img, W_img) bool, True at padding.
            use_dictionary (bool): Whether to go through the dictionary. Defaults to True.
            copies (int): How many times each image counts in the dictionary update (the released code updates
                from the copies of an image, one per paired text). Defaults to 1.

        Returns:
            dict: ``features`` (B, N, C) the dictionary's inputs (N = h * w, row-major), ``embedded`` (B, N, C)
            the fused tokens before masking, position and norm, ``pos`` (B, N, C), ``valid`` (B, N) bool,
            ``hw`` (h, w); with the dictionary also ``indices`` (B, N) long (-1 at padding), and ``used``,
            ``perplexity`` (the dictionary's usage over this batch's valid tokens).
        """
        x, valid = self.project(feat, padding)
        b, c, h, w = x.shape
        pos = self.positional_encoding(~valid).flatten(2).transpose(1, 2)
        features = x.flatten(2).transpose(1, 2)
        flat_valid = valid.flatten(1)
        out = dict(features=features, pos=pos, valid=flat_valid, hw=(h, w))
        if not use_dictionary:
            out['embedded'] = features
            return out
        if self.dictionary is None:
            raise RuntimeError('SOHONeck: built without a dictionary; call with use_dictionary=False')
        if copies < 1:
            raise ValueError(f'SOHONeck: copies must be >= 1, got {copies}')
        counted = torch.ones_like(flat_valid) if self.update_padding and self.training else flat_valid
        weights = None if copies == 1 else features.new_full((int(counted.sum()), ), float(copies))
        looked = self.dictionary(features[counted], weights=weights)
        looked_q, looked_i = looked['quantized'], looked['indices']
        if counted is not flat_valid:  # the valid ones among all the positions looked up
            keep = flat_valid[counted]
            looked_q, looked_i = looked_q[keep], looked_i[keep]
        quantized = features.clone().masked_scatter(flat_valid[..., None], looked_q)
        indices = torch.full(flat_valid.shape, -1, dtype=torch.long, device=x.device)
        indices[flat_valid] = looked_i
        if counted is not flat_valid:  # the usage of the valid tokens only
            looked.update(self.dictionary.usage_stats(torch.bincount(indices[flat_valid],
                                                                     minlength=self.dictionary.num_entries)))
        entries = self.entry_proj(quantized) if self.entry_proj is not None else quantized
        if self.fusion == 'gate':
            score = self.gate(torch.cat([entries, features], dim=2).transpose(1, 2).reshape(b, 2 * c, h, w))
            score = score.softmax(dim=1).flatten(2).transpose(1, 2)  # (B, N, 2)
            embedded = entries * score[..., :1] + features * score[..., 1:]
        elif self.fusion == 'sum':
            embedded = entries + features
        else:
            embedded = entries
        out.update(embedded=embedded, indices=indices, used=looked['used'], perplexity=looked['perplexity'])
        return out

    def tokens(self, embedded: Tensor, pos: Tensor, token_mask: Optional[Tensor] = None) -> Tensor:
        """The transformer's visual tokens: LN(embedded, with :attr:`mask_embedding` where ``token_mask``, + pos).

        Args:
            embedded (Tensor): (n, N, C) fused tokens (:meth:`forward`'s, indexed per pair).
            pos (Tensor): (n, N, C) their position encoding.
            token_mask (Tensor, optional): (n, N) bool, the tokens MVM masks.

        Returns:
            Tensor: (n, N, C).
        """
        if token_mask is not None:
            embedded = torch.where(token_mask[..., None], self.mask_embedding.to(embedded.dtype), embedded)
        return self.norm(embedded + pos)


__all__ = ['SOHONeck', 'FUSIONS']
