from collections import Counter
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from mmengine.dist import master_only

from mmvlg.registry import VISUALIZERS

GT_COLOR = (0, 200, 0)  # RGB
TOP1_COLOR = (255, 0, 0)
OTHER_COLOR = (255, 160, 0)
TEXT_COLOR = (255, 255, 255)
BAND_COLOR = (24, 24, 24)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def wrap_text(text: str, width: int, scale: float, thickness: int = 1) -> List[str]:
    """``text`` broken into lines (at spaces; a word longer than a line is cut) that fit ``width`` pixels in
    OpenCV's Hershey simplex font at ``scale``."""
    def fits(s: str) -> bool:
        return cv2.getTextSize(s, _FONT, scale, thickness)[0][0] <= width

    lines: List[str] = []
    for paragraph in str(text).split('\n'):
        line = ''
        for word in paragraph.split():
            while not fits(word) and len(word) > 1:  # a word wider than the image: cut it
                cut = max([1] + [i for i in range(1, len(word)) if fits(word[:i])])
                if line:
                    lines.append(line)
                    line = ''
                lines.append(word[:cut])
                word = word[cut:]
            candidate = f'{line} {word}' if line else word
            if line and not fits(candidate):
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return [ln for ln in lines if ln] or ['']


def text_band(lines: Sequence[Tuple[str, Tuple[int, int, int]]], width: int, scale: float,
              thickness: int = 1) -> np.ndarray:
    """A dark (h, width, 3) RGB band with the given (text, RGB colour) lines, each wrapped to ``width``."""
    pad = max(3, int(round(8 * scale)))
    wrapped = [(w, color) for text, color in lines for w in wrap_text(text, width - 2 * pad, scale, thickness)]
    (_, th), base = cv2.getTextSize('Ag', _FONT, scale, thickness)
    step = th + base + pad // 2
    band = np.full((pad + step * len(wrapped) + pad // 2, width, 3), BAND_COLOR, dtype=np.uint8)
    for i, (line, color) in enumerate(wrapped):
        cv2.putText(band, line, (pad, pad + th + i * step), _FONT, scale, tuple(int(c) for c in color), thickness,
                    cv2.LINE_AA)
    return band


@VISUALIZERS.register_module()
class GroundingVisualizer(DetLocalVisualizer):
    """Draws a vision-language sample: the image, its text outside the image and what there is to draw.

    * The text (the referring expression, caption or question: ``text`` metainfo) goes into a band above the
      image, wrapped, so that it never covers the image nor is cut.
    * Ground-truth boxes (``ori_gt_bboxes`` on the original image, else ``gt_instances``) in green; predicted
      boxes (``pred_instances``) with the best in red and the other ``topk - 1`` in orange, each numbered by its
      rank just outside its corner. The top-1 prediction is always drawn, whatever ``pred_score_thr``; the
      others only when their score reaches it. The scores are listed in a band below the image.
    * VQA: the predicted answer (``pred_answer``, with ``pred_answer_score``) and the annotators' answers
      (``answers``) in the band below.
    * Images smaller than ``min_size`` on their longer side (e.g. SynthRef's 64-128 px) are upscaled for
      drawing (as ``demo/attention_demo.py`` does), boxes with them; lines stay thin so they do not hide the
      objects.

    Used by ``tools/test.py --show-dir`` (through :class:`~mmvlg.engine.hooks.SampleVisualizationHook`),
    ``tools/analysis_tools/browse_dataset.py`` and the inferencer. With ``draw_gt`` and ``draw_pred`` both on,
    ground truth and prediction go into one image.

    Args:
        name (str): The instance name.
        topk (int): How many predicted boxes to draw. Defaults to 1.
        min_size (int): Upscale images whose longer side is below this many pixels to it for drawing (0: never).
            Defaults to 512.
        **kwargs: The arguments of :class:`mmdet.visualization.DetLocalVisualizer`.
    """

    def __init__(self, name: str = 'visualizer', topk: int = 1, min_size: int = 512, **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.topk = topk
        self.min_size = min_size

    @staticmethod
    def _gt_boxes(data_sample: DetDataSample, image_hw) -> Optional[np.ndarray]:
        """Ground-truth boxes in the coordinates of the drawn image: ``ori_gt_bboxes`` when the image is the
        original one (as in ``tools/test.py --show-dir``), else the (augmented) ``gt_instances`` boxes."""
        ori = data_sample.metainfo.get('ori_gt_bboxes')
        if ori is not None and tuple(image_hw) == tuple(data_sample.metainfo.get('ori_shape', ())):
            return np.asarray(ori, dtype=np.float32).reshape(-1, 4)
        if 'gt_instances' in data_sample and 'bboxes' in data_sample.gt_instances \
                and len(data_sample.gt_instances):
            boxes = data_sample.gt_instances.bboxes
            boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
            return np.asarray(boxes.cpu().numpy() if hasattr(boxes, 'cpu') else boxes, np.float32).reshape(-1, 4)
        return None

    def _upscale(self, image: np.ndarray) -> Tuple[np.ndarray, float]:
        h, w = image.shape[:2]
        if not self.min_size or max(h, w) >= self.min_size:
            return image, 1.0
        factor = self.min_size / max(h, w)
        size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
        return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), factor

    @staticmethod
    def _answers_line(answers) -> str:
        answers = [a['answer'] if isinstance(a, dict) else str(a) for a in answers]
        counts = Counter(answers).most_common()
        return 'annotators: ' + ', '.join(f'{a} x{n}' if n > 1 else a for a, n in counts)

    def draw_sample(self, image: np.ndarray, data_sample: Optional[DetDataSample] = None, draw_gt: bool = True,
                    draw_pred: bool = True, pred_score_thr: float = 0.0) -> np.ndarray:
        """The drawing of one sample (RGB uint8, the image with its bands); see the class doc."""
        image = np.ascontiguousarray(image.clip(0, 255).astype(np.uint8))
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        ori_hw = image.shape[:2]
        canvas, factor = self._upscale(image)
        canvas = canvas.copy()
        h, w = canvas.shape[:2]
        lw = max(1, int(round(max(h, w) / 256)))
        scale = max(0.45, min(1.2, w / 900))
        label_scale = scale * 0.8
        top: List[Tuple[str, tuple]] = []
        bottom: List[Tuple[str, tuple]] = []
        if data_sample is not None:
            meta = data_sample.metainfo
            text = meta.get('text', '')
            if text:
                top.append((str(text), TEXT_COLOR))
            if draw_gt:
                gt = self._gt_boxes(data_sample, ori_hw)
                if gt is not None and len(gt):
                    for box in gt * factor:
                        self._box(canvas, box, GT_COLOR, lw)
                    bottom.append((f'ground truth: {len(gt)} box{"es" if len(gt) > 1 else ""} (green)', GT_COLOR))
                if meta.get('answers'):
                    bottom.append((self._answers_line(meta['answers']), GT_COLOR))
            if draw_pred:
                self._draw_pred(canvas, data_sample, factor, lw, label_scale, pred_score_thr, bottom)
        parts = []
        if top:
            parts.append(text_band(top, w, scale))
        parts.append(canvas)
        if bottom:
            parts.append(text_band(bottom, w, scale * 0.85))
        return np.concatenate(parts, axis=0) if len(parts) > 1 else canvas

    def _draw_pred(self, canvas: np.ndarray, data_sample: DetDataSample, factor: float, lw: int,
                   label_scale: float, pred_score_thr: float, bottom: list) -> None:
        meta = data_sample.metainfo
        if meta.get('pred_answer') is not None:
            score = data_sample.get('pred_answer_score', None)
            score = None if score is None else np.asarray(getattr(score, 'cpu', lambda: score)(), np.float32)
            score = f' ({float(score.reshape(-1)[0]):.2f})' if score is not None and score.size == 1 else ''
            bottom.append((f'predicted answer: {meta["pred_answer"]}{score}', TOP1_COLOR))
        if 'pred_instances' not in data_sample or 'bboxes' not in data_sample.pred_instances:
            return
        pred = data_sample.pred_instances.cpu()
        if not len(pred):
            bottom.append(('prediction: no box', TOP1_COLOR))
            return
        scores = pred.scores.float().numpy() if 'scores' in pred else np.ones(len(pred), np.float32)
        boxes = pred.bboxes
        boxes = (boxes.tensor if hasattr(boxes, 'tensor') else boxes).float().numpy().reshape(-1, 4)
        keep = scores >= pred_score_thr
        keep[0] = True  # the top-1 prediction is the answer: always drawn
        order = [i for i in range(min(len(boxes), max(1, self.topk))) if keep[i]]
        for rank in reversed(order):
            color = TOP1_COLOR if rank == 0 else OTHER_COLOR
            box = boxes[rank] * factor
            self._box(canvas, box, color, lw)
            if len(order) > 1:
                self._rank_label(canvas, box, str(rank + 1), color, label_scale)
        listed = ', '.join(f'{i + 1}: {scores[i]:.2f}' for i in order)
        below = f' (top-1 below the score threshold {pred_score_thr:g}, drawn anyway)' \
            if scores[0] < pred_score_thr else ''
        bottom.append((f'prediction (red{", then orange" if len(order) > 1 else ""}), score {listed}{below}',
                       TOP1_COLOR))

    @staticmethod
    def _box(canvas: np.ndarray, box: np.ndarray, color: tuple, lw: int) -> None:
        h, w = canvas.shape[:2]
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        x1, x2 = sorted((min(max(x1, 0), w - 1), min(max(x2, 0), w - 1)))
        y1, y2 = sorted((min(max(y1, 0), h - 1), min(max(y2, 0), h - 1)))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, lw, cv2.LINE_8)

    @staticmethod
    def _rank_label(canvas: np.ndarray, box: np.ndarray, label: str, color: tuple, scale: float) -> None:
        """The rank of a box in a small tag just above its top-left corner (inside it when at the top edge)."""
        (tw, th), base = cv2.getTextSize(label, _FONT, scale, 1)
        h, w = canvas.shape[:2]
        x = int(min(max(float(box[0]), 0), w - tw - 2))
        y = int(float(box[1])) - 2
        if y - th - base < 0:
            y = int(float(box[1])) + th + base + 2
        cv2.rectangle(canvas, (x, y - th - base), (x + tw + 2, y + 1), (0, 0, 0), -1)
        cv2.putText(canvas, label, (x + 1, y - base + 1), _FONT, scale, color, 1, cv2.LINE_AA)

    @master_only
    def add_datasample(self, name: str, image: np.ndarray, data_sample: Optional[DetDataSample] = None,
                       draw_gt: bool = True, draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: Optional[str] = None, pred_score_thr: float = 0.0, step: int = 0) -> None:
        drawn = self.draw_sample(image, data_sample, draw_gt=draw_gt, draw_pred=draw_pred,
                                 pred_score_thr=pred_score_thr)
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            import mmcv
            mmcv.imwrite(drawn[..., ::-1], out_file)
        else:
            self.add_image(name, drawn, step)
