import os.path as osp
from typing import Optional, Sequence

import mmcv
from mmdet.engine.hooks import DetVisualizationHook
from mmdet.structures import DetDataSample
from mmengine.fileio import get
from mmengine.utils import mkdir_or_exist

from mmvlg.registry import HOOKS


@HOOKS.register_module()
class SampleVisualizationHook(DetVisualizationHook):
    """:class:`mmdet.engine.hooks.DetVisualizationHook` that writes one test drawing per *sample*.

    MMDetection names the file of a test drawing after the image alone (``osp.basename(img_path)``). In
    grounding data an image carries several expressions (one sample each), and the splits of a data set
    often reuse file names (SynthRef's ``images/{split}/000000.png``), so all but the last drawing of an
    image were overwritten. Here the drawing of a sample goes to
    ``{test_out_dir}/{split}/{image stem}_{sample id}{ext}`` (``split`` from the sample's metainfo; the sample id
    is the first of ``question_id`` (VQA: the questions of one image share its ``img_id``), ``text_id``
    (captions) and ``img_id`` (the expression's id in grounding data) that the metainfo has, else the running
    sample index). A relative ``test_out_dir`` is, as in MMDetection, relative to ``{work_dir}/{timestamp}``.

    The visualizer (:class:`~mmvlg.visualization.GroundingVisualizer`) gets ``score_thr`` as its threshold for
    the predictions after the first: the top-1 box is always drawn.

    Args:
        **kwargs: The arguments of :class:`~mmdet.engine.hooks.DetVisualizationHook` (``draw``,
            ``interval``, ``score_thr``, ``show``, ``wait_time``, ``test_out_dir``, ``backend_args``).
    """

    def _sample_file(self, out_dir: str, data_sample: DetDataSample) -> str:
        stem, ext = osp.splitext(osp.basename(data_sample.img_path))
        meta = data_sample.metainfo
        sample_id = next((meta[k] for k in ('question_id', 'text_id', 'img_id') if meta.get(k) is not None),
                         self._test_index)
        name = f'{stem}_{sample_id}{ext or ".png"}'
        split = data_sample.metainfo.get('split', None)
        return osp.join(out_dir, str(split), name) if split else osp.join(out_dir, name)

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict,
                        outputs: Sequence[DetDataSample]) -> None:
        """Draw (and save or show) every test sample of the batch.

        Args:
            runner (Runner): The runner of the test loop.
            batch_idx (int): Index of the batch in the test loop.
            data_batch (dict): The batch from the dataloader.
            outputs (Sequence[DetDataSample]): The predictions, one per sample.
        """
        if self.draw is False:
            return
        out_dir: Optional[str] = None
        if self.test_out_dir is not None:
            out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
        for data_sample in outputs:
            self._test_index += 1
            img_path = data_sample.img_path
            img = mmcv.imfrombytes(get(img_path, backend_args=self.backend_args), channel_order='rgb')
            out_file = None
            if out_dir is not None:
                out_file = self._sample_file(out_dir, data_sample)
                mkdir_or_exist(osp.dirname(out_file))
            self._visualizer.add_datasample(
                osp.basename(img_path) if self.show else 'test_img', img, data_sample=data_sample,
                show=self.show, wait_time=self.wait_time, pred_score_thr=self.score_thr, out_file=out_file,
                step=self._test_index)
