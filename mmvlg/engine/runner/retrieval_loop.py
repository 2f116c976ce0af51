"""Validation/test loops for image-text retrieval with ITM re-ranking of the dual encoder's top-k."""
from typing import Dict, List

import torch
from mmengine.dist import all_gather_object
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop, ValLoop

from mmvlg.registry import LOOPS


class _RetrievalMixin:
    """Collect the dual encoder's per-sample embeddings over the whole data set (all ranks), score every
    (image, text) pair, let the model re-rank each query's top-k with its fusion encoder
    (``model.rerank``, when ``model.rerank_cfg['k'] > 0``) and hand the score matrices to the evaluator
    (:class:`~mmvlg.evaluation.RetrievalRecallMetric`).

    The un-preprocessed images (uint8) of the gallery are kept in memory for the re-ranking: about 0.44 MB
    per 384x384 image. Every rank gathers everything and scores the pairs itself (the re-ranking is not
    split across ranks).
    """
    mode = 'val'

    def _retrieve(self) -> Dict[str, float]:
        runner = self.runner
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        runner.model.eval()
        records: List[dict] = []
        gallery: Dict = {}
        k = getattr(model, 'rerank_cfg', {}).get('k', 0)
        for idx, data_batch in enumerate(self.dataloader):
            runner.call_hook(f'before_{self.mode}_iter', batch_idx=idx, data_batch=data_batch)
            with torch.no_grad():
                outputs = getattr(runner.model, f'{self.mode}_step')(data_batch)
            for raw, ds in zip(data_batch['inputs'], outputs):
                img_id = ds.metainfo['img_id']
                records.append(dict(img_id=img_id, text=ds.text, img_embed=ds.img_embed.cpu(),
                                    text_embed=ds.text_embed.cpu()))
                if k > 0 and img_id not in gallery:
                    gallery[img_id] = (raw.cpu(), {key: ds.metainfo[key] for key in ('img_shape', 'ori_shape')
                                                   if key in ds.metainfo})
            runner.call_hook(f'after_{self.mode}_iter', batch_idx=idx, data_batch=data_batch, outputs=outputs)
        records = [r for part in all_gather_object(records) for r in part]
        if k > 0:
            gallery = {key: v for part in all_gather_object(gallery) for key, v in part.items()}
        rows: Dict = {}
        images, text_to_image = [], []
        for r in records:
            if r['img_id'] not in rows:
                rows[r['img_id']] = len(images)
                images.append(r)
            text_to_image.append(rows[r['img_id']])
        sim = torch.stack([r['img_embed'] for r in images]) @ torch.stack([r['text_embed'] for r in records]).t()
        i2t = t2i = sim
        if k > 0:
            from mmdet.structures import DetDataSample
            samples = []
            for r in images:
                ds = DetDataSample()
                ds.set_metainfo(gallery[r['img_id']][1])
                samples.append(ds)
            data = model.data_preprocessor(dict(inputs=[gallery[r['img_id']][0] for r in images],
                                                data_samples=samples), False)
            pad = model.padding_mask(data['inputs'], data['data_samples'])
            device = data['inputs'].device
            i2t, t2i = model.rerank(sim.to(device), data['inputs'], [r['text'] for r in records], pad)
        self.evaluator.process(data_samples=[dict(i2t_scores=i2t.cpu(), t2i_scores=t2i.cpu(),
                                                  text_to_image=text_to_image)], data_batch=None)
        return self.evaluator.evaluate(1)


@LOOPS.register_module()
class RetrievalValLoop(_RetrievalMixin, ValLoop):
    """``ValLoop`` for image-text retrieval (dual encoder + optional ITM re-ranking, see the mixin)."""
    mode = 'val'

    def run(self) -> dict:
        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        metrics = self._retrieve()
        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics


@LOOPS.register_module()
class RetrievalTestLoop(_RetrievalMixin, TestLoop):
    """``TestLoop`` for image-text retrieval (dual encoder + optional ITM re-ranking)."""
    mode = 'test'

    def run(self) -> dict:
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        metrics = self._retrieve()
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics
