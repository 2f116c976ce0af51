import torch

from mmvlg.models.utils import cell_centres, denormalize_boxes, rescale_boxes


def test_denormalize_boxes():
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.25, 0.75, 0.5, 0.5]])
    out = denormalize_boxes(boxes, (100, 200))  # (h, w)
    torch.testing.assert_close(out, torch.tensor([[80., 30., 120., 70.], [0., 50., 100., 100.]]))


def test_rescale_boxes_divides_by_scale_factor_and_clips_to_ori_shape():
    boxes = torch.tensor([[140., -10., 220., 30.], [80., 30., 120., 70.]])
    meta = dict(img_shape=(100, 200), scale_factor=(2.0, 0.5), ori_shape=(150, 100))
    out = rescale_boxes(boxes, meta)
    torch.testing.assert_close(out, torch.tensor([[70., 0., 100., 60.], [40., 60., 60., 140.]]))
    assert boxes[0, 1] == -10  # the input is not modified
    # each step only when its key is there
    torch.testing.assert_close(rescale_boxes(boxes, dict(scale_factor=(2.0, 0.5))),
                               torch.tensor([[70., -20., 110., 60.], [40., 60., 60., 140.]]))
    torch.testing.assert_close(rescale_boxes(boxes, dict(ori_shape=(50, 200))),
                               torch.tensor([[140., 0., 200., 30.], [80., 30., 120., 50.]]))
    torch.testing.assert_close(rescale_boxes(boxes, {}), boxes)


def test_cell_centres():
    norm = cell_centres((2, 3))
    assert norm.shape == (6, 2)
    # row-major: cell i * w + j is (x, y) = ((j + .5) / w, (i + .5) / h)
    torch.testing.assert_close(norm[4], torch.tensor([1.5 / 3, 1.5 / 2]))
    torch.testing.assert_close(norm[:3, 0], torch.tensor([0.5, 1.5, 2.5]) / 3)
    pixels = cell_centres((2, 3), (64, 96))  # stride 32
    torch.testing.assert_close(pixels, torch.tensor([[16., 16.], [48., 16.], [80., 16.],
                                                     [16., 48.], [48., 48.], [80., 48.]]))
