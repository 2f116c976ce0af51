"""Masks of the padding that the data preprocessor adds around each image of a batch."""
import torch
from mmdet.structures import SampleList
from torch import Tensor


def padding_mask(inputs: Tensor, data_samples: SampleList) -> Tensor:
    """The padding of a batch: (bs, H, W) bool, True outside each sample's ``img_shape``.

    Args:
        inputs (Tensor): (bs, C, H, W) padded images from the data preprocessor.
        data_samples (list): One data sample per image; ``metainfo['img_shape']`` is the (h, w) of the image
            before padding (the full input size when missing).

    Returns:
        Tensor: (bs, H, W) bool on ``inputs.device``.
    """
    bs, _, h, w = inputs.shape
    mask = inputs.new_ones(bs, h, w, dtype=torch.bool)
    for b, ds in enumerate(data_samples):
        ih, iw = ds.metainfo.get('img_shape', (h, w))[:2]
        mask[b, :ih, :iw] = False
    return mask
