from typing import Optional

import numpy as np
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from mmengine.dist import master_only

from mmvlg.registry import VISUALIZERS


@VISUALIZERS.register_module()
class GroundingVisualizer(DetLocalVisualizer):
    """Draws a referring-expression sample: the expression as a title, the ground-truth box(es) in green
    and the top-``topk`` predicted boxes with their scores (the best in red, the others in orange).

    Used by ``tools/test.py --show-dir`` (through ``DetVisualizationHook``), the browse tool and the
    inferencer. With ``draw_gt`` and ``draw_pred`` both on, ground truth and prediction go into one image.
    """

    def __init__(self, name: str = 'visualizer', topk: int = 1, **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.topk = topk

    @staticmethod
    def _gt_boxes(data_sample: DetDataSample, image_hw) -> Optional[np.ndarray]:
        """Ground-truth boxes in the coordinates of the drawn image: ``ori_gt_bboxes`` when the image is the
        original one (as in ``tools/test.py --show-dir``), else the (augmented) ``gt_instances`` boxes."""
        ori = data_sample.metainfo.get('ori_gt_bboxes')
        if ori is not None and tuple(image_hw) == tuple(data_sample.metainfo.get('ori_shape', ())):
            return np.asarray(ori, dtype=np.float32).reshape(-1, 4)
        if 'gt_instances' in data_sample and len(data_sample.gt_instances):
            boxes = data_sample.gt_instances.bboxes
            boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
            return boxes.cpu().numpy().reshape(-1, 4)
        return None

    @master_only
    def add_datasample(self, name: str, image: np.ndarray, data_sample: Optional[DetDataSample] = None,
                       draw_gt: bool = True, draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: Optional[str] = None, pred_score_thr: float = 0.0, step: int = 0) -> None:
        image = image.clip(0, 255).astype(np.uint8)
        self.set_image(image)
        h, w = image.shape[:2]
        lw = max(1, int(round(max(h, w) / 200)))
        fs = max(8, int(max(h, w) / 40))
        if data_sample is not None:
            text = data_sample.metainfo.get('text', '')
            if draw_gt:
                gt = self._gt_boxes(data_sample, image.shape[:2])
                if gt is not None and len(gt):
                    self.draw_bboxes(gt, edge_colors=(0, 220, 0), line_widths=lw)
            if draw_pred and 'pred_instances' in data_sample:
                pred = data_sample.pred_instances.cpu()
                keep = pred.scores >= pred_score_thr
                boxes, scores = pred.bboxes[keep][:self.topk].numpy(), pred.scores[keep][:self.topk].numpy()
                for i in range(len(boxes) - 1, -1, -1):
                    color = (255, 0, 0) if i == 0 else (255, 160, 0)
                    self.draw_bboxes(boxes[i:i + 1], edge_colors=color, line_widths=lw)
                    self.draw_texts(f'{scores[i]:.2f}', boxes[i, :2] + lw, font_sizes=fs, colors=color,
                                    bboxes=[dict(facecolor='black', alpha=0.6, pad=0.5, edgecolor='none')])
            if text:
                self.draw_texts(text, np.array([lw, lw]), font_sizes=fs, colors=(255, 255, 255),
                                bboxes=[dict(facecolor='black', alpha=0.6, pad=0.7, edgecolor='none')])
        drawn = self.get_image()
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            import mmcv
            mmcv.imwrite(drawn[..., ::-1], out_file)
        else:
            self.add_image(name, drawn, step)
