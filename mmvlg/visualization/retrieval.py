"""Drawings of image-text retrieval results (``tools/test.py --show-dir`` with a retrieval config).

For every gallery image, the image beside its top-k retrieved captions (text retrieval), each marked correct
(green, ``+``: a caption of this image) or wrong (red, ``x``), with the image's own first caption in grey when
none of the top-k is correct; for every caption, its top-k retrieved images (image retrieval), the correct one
framed in green and the others in red. :func:`save_retrieval_drawings` writes them;
:func:`retrieval_out_dir` finds where (the ``test_out_dir`` of the runner's visualization hook, as
MMDetection's ``DetVisualizationHook`` uses it), and :class:`~mmvlg.engine.RetrievalTestLoop` calls both.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
import mmcv
import numpy as np
from mmengine.fileio import get

from .attention import _wrap

GREEN, RED, GREY, WHITE = (60, 180, 60), (40, 40, 220), (170, 170, 170), (255, 255, 255)  # BGR
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _fit(img: np.ndarray, side: int) -> np.ndarray:
    """Resize so that the longer side is ``side`` (up or down; nearest-neighbour when enlarging, so small
    synthetic images stay sharp)."""
    h, w = img.shape[:2]
    factor = side / max(h, w)
    if factor == 1:
        return img
    interp = cv2.INTER_NEAREST if factor > 1 else cv2.INTER_AREA
    return cv2.resize(img, (max(1, int(round(w * factor))), max(1, int(round(h * factor)))), interpolation=interp)


def _text_lines(lines: Sequence[tuple], width: int, scale: float = 0.5) -> np.ndarray:
    """A black band with each ``(text, colour)`` wrapped to ``width`` pixels."""
    thickness = 1
    line_h = cv2.getTextSize('Ag', FONT, scale, thickness)[0][1] + 10
    rows = [(part, colour) for text, colour in lines for part in (_wrap(text, width - 12, scale, thickness) or [''])]
    band = np.zeros((line_h * len(rows) + 8, width, 3), np.uint8)
    for k, (text, colour) in enumerate(rows):
        cv2.putText(band, text, (6, line_h * (k + 1)), FONT, scale, colour, thickness, cv2.LINE_AA)
    return band


def _stack(*panels: np.ndarray, axis: int) -> np.ndarray:
    """Concatenate panels, padding the other dimension with black."""
    other = 1 - axis
    size = max(p.shape[other] for p in panels)
    padded = []
    for p in panels:
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[other] = (0, size - p.shape[other])
        padded.append(np.pad(p, pad))
    return np.concatenate(padded, axis=axis)


def draw_text_retrieval(image: np.ndarray, captions: Sequence[str], scores: Sequence[float],
                        correct: Sequence[bool], title: str = '', missed: Optional[str] = None,
                        image_size: int = 256, text_width: int = 520) -> np.ndarray:
    """One image query and its retrieved captions.

    Args:
        image (np.ndarray): (H, W, 3) BGR ``uint8``.
        captions (list[str]): The top-k captions, best first.
        scores (list[float]): Their scores.
        correct (list[bool]): Whether each is a caption of this image.
        title (str): First line of the text panel (e.g. the image id).
        missed (str, optional): A caption of the image, drawn in grey when none of the top-k is correct.
        image_size (int): Longer side of the drawn image. Defaults to 256.
        text_width (int): Width of the text panel in pixels. Defaults to 520.

    Returns:
        np.ndarray: BGR ``uint8`` drawing: the image on the left, the ranked captions on the right.
    """
    lines = [(title, WHITE)] if title else []
    for rank, (caption, score, ok) in enumerate(zip(captions, scores, correct), 1):
        lines.append((f'{rank}. {"+" if ok else "x"} {score:.3f}  {caption}', GREEN if ok else RED))
    if missed is not None and not any(correct):
        lines.append((f'own caption: {missed}', GREY))
    return _stack(_fit(image, image_size), np.zeros((1, 6, 3), np.uint8), _text_lines(lines, text_width), axis=1)


def draw_image_retrieval(caption: str, images: Sequence[np.ndarray], scores: Sequence[float],
                         correct: Sequence[bool], thumb_size: int = 160) -> np.ndarray:
    """One caption query and its retrieved images, side by side below the caption, each framed green (the
    caption's image) or red, with its rank and score under it.

    Returns:
        np.ndarray: BGR ``uint8`` drawing.
    """
    thumbs = []
    for rank, (img, score, ok) in enumerate(zip(images, scores, correct), 1):
        thumb = _fit(img, thumb_size).copy()
        colour = GREEN if ok else RED
        thumb = cv2.copyMakeBorder(thumb, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=colour)
        label = _text_lines([(f'{rank}. {"+" if ok else "x"} {score:.3f}', colour)], thumb.shape[1], 0.45)
        thumbs += [_stack(thumb, label, axis=0), np.zeros((1, 6, 3), np.uint8)]
    row = _stack(*thumbs[:-1], axis=1) if thumbs else np.zeros((thumb_size, thumb_size, 3), np.uint8)
    return _stack(_text_lines([(caption, WHITE)], max(row.shape[1], 320)), row, axis=0)


def retrieval_out_dir(runner) -> Optional[str]:
    """The folder for retrieval drawings: ``{work_dir}/{timestamp}/{test_out_dir}`` of the runner's visualization
    hook (an ``mmdet`` ``DetVisualizationHook`` or subclass with ``draw=True`` and a ``test_out_dir``, what
    ``tools/test.py --show-dir`` sets), else None."""
    for hook in getattr(runner, 'hooks', []):
        out = getattr(hook, 'test_out_dir', None)
        if out and getattr(hook, 'draw', False):
            return osp.join(runner.work_dir, runner.timestamp, out)
    return None


def save_retrieval_drawings(out_dir: str, img_paths: Sequence[str], img_ids: Sequence, texts: Sequence[str],
                            i2t_scores, t2i_scores, text_to_image: Sequence[int], topk: int = 5,
                            backend_args: Optional[dict] = None) -> List[str]:
    """Write the retrieval drawings of a whole gallery.

    Args:
        out_dir (str): Folder; drawings go to ``{out_dir}/text_retrieval/{image stem}_{img_id}.jpg`` (one per
            gallery image) and ``{out_dir}/image_retrieval/{text index:06d}.jpg`` (one per caption).
        img_paths (list[str]): The file of each gallery image (row).
        img_ids (list): The id of each gallery image.
        texts (list[str]): Every caption (column).
        i2t_scores: (n_img, n_text) text-retrieval scores (tensor or array).
        t2i_scores: (n_img, n_text) image-retrieval scores.
        text_to_image (list[int]): The gallery row of each caption's image.
        topk (int): Results drawn per query. Defaults to 5.
        backend_args (dict, optional): MMEngine file backend arguments to read the images.

    Returns:
        list[str]: The files written.
    """
    i2t = np.asarray(i2t_scores.cpu() if hasattr(i2t_scores, 'cpu') else i2t_scores, dtype=np.float32)
    t2i = np.asarray(t2i_scores.cpu() if hasattr(t2i_scores, 'cpu') else t2i_scores, dtype=np.float32)
    n_img, n_text = i2t.shape
    if len(img_paths) != n_img or len(texts) != n_text or len(text_to_image) != n_text:
        raise ValueError(f'retrieval drawings: {len(img_paths)} images and {len(texts)} captions do not match '
                         f'the score matrix of shape {i2t.shape}')
    cache: Dict[int, np.ndarray] = {}

    def load(row: int) -> np.ndarray:
        if row not in cache:
            cache[row] = mmcv.imfrombytes(get(img_paths[row], backend_args=backend_args))
        return cache[row]

    own: Dict[int, List[int]] = {}
    for j, row in enumerate(text_to_image):
        own.setdefault(int(row), []).append(j)
    written = []
    k = max(1, min(topk, n_text))
    os.makedirs(osp.join(out_dir, 'text_retrieval'), exist_ok=True)
    for row in range(n_img):
        best = np.argsort(-i2t[row], kind='stable')[:k]
        stem = osp.splitext(osp.basename(img_paths[row]))[0]
        drawing = draw_text_retrieval(load(row), [texts[j] for j in best], i2t[row, best].tolist(),
                                      [int(text_to_image[j]) == row for j in best],
                                      title=f'image {img_ids[row]}: top {k} captions',
                                      missed=texts[own[row][0]] if own.get(row) else None)
        path = osp.join(out_dir, 'text_retrieval', f'{stem}_{img_ids[row]}.jpg')
        mmcv.imwrite(drawing, path)
        written.append(path)
    k = max(1, min(topk, n_img))
    os.makedirs(osp.join(out_dir, 'image_retrieval'), exist_ok=True)
    for j in range(n_text):
        best = np.argsort(-t2i[:, j], kind='stable')[:k]
        drawing = draw_image_retrieval(texts[j], [load(r) for r in best], t2i[best, j].tolist(),
                                       [int(r) == int(text_to_image[j]) for r in best])
        path = osp.join(out_dir, 'image_retrieval', f'{j:06d}.jpg')
        mmcv.imwrite(drawing, path)
        written.append(path)
    return written
