"""FIBER's coarse-grained pooler: :class:`~mmvlg.models.layers.DualStreamPooler` with FIBER's choices."""
from .dual_stream_pooler import DualStreamPooler, FirstTokenPooler, masked_mean


class CrossModalPooler(DualStreamPooler):
    """Project both streams to ``embed_dims`` and pool them: the text by its first token, the image by the mean
    of its (valid) tokens, each followed by a BERT-style pooler (dense + tanh), as FIBER's coarse-grained model
    (the defaults of :class:`~mmvlg.models.layers.DualStreamPooler`, whose keys and outputs it has:
    ``text`` (bs, L, D), ``image`` (bs, N, D), ``text_cls``, ``image_cls`` (bs, D), ``cls`` (bs, 2D)).

    Args:
        img_dims (int): Width of the image tokens.
        text_dims (int): Width of the text tokens.
        embed_dims (int): Common width (768 in FIBER).
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self, img_dims: int, text_dims: int, embed_dims: int = 768, init_cfg=None) -> None:
        super().__init__(img_dims, text_dims, embed_dims, init_cfg=init_cfg)


__all__ = ['CrossModalPooler', 'FirstTokenPooler', 'masked_mean']
