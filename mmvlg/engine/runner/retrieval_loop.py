"""Validation/test loops for image-text retrieval: every image and text encoded once, the whole gallery
ranked by the model's retrieval protocol (dual encoder, then fused re-scoring of each query's top-k)."""
from typing import Dict, List

import torch
from mmengine.dist import all_gather_object, is_main_process
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop, ValLoop

from mmvlg.evaluation.metrics.retrieval_metric import group_texts_by_image
from mmvlg.registry import LOOPS
from mmvlg.visualization.retrieval import retrieval_out_dir, save_retrieval_drawings


class _RetrievalMixin:
    """Rank a retrieval set with a model that implements
    :class:`~mmvlg.models.multimodal.retrieval.ImageTextRetrievalMixin`.

    Every batch goes through the data preprocessor once; the image and text features the model's
    ``encode_batch`` returns are cached on the CPU (one entry per distinct ``img_id`` and one per text),
    gathered from all ranks, and the model's ``rank_gallery`` scores every (image, text) pair from that
    cache: the dual-encoder similarities, then its fused ``score_pairs`` on each query's top-k
    (``model.retrieval_cfg['k']``). The score matrices go to the evaluator
    (:class:`~mmvlg.evaluation.RetrievalRecallMetric`). Every rank ranks
    the whole gallery itself (the re-scoring is not split across ranks).
    """
    mode = 'val'

    def _retrieve(self) -> Dict[str, float]:
        runner = self.runner
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        for name in ('encode_batch', 'rank_gallery'):
            if not callable(getattr(model, name, None)):
                raise TypeError(f'{type(self).__name__}: {type(model).__name__} does not implement the retrieval '
                                f'protocol ({name}); see mmvlg.models.multimodal.retrieval.ImageTextRetrievalMixin')
        from mmvlg.models.multimodal.retrieval import split_cached
        runner.model.eval()
        img_ids: List = []
        img_paths: List = []  # each sample's image file, for the drawings of --show-dir
        text_ids: List = []  # (text_id, text) of every sample, for the metric's ranked lists (--out)
        images: Dict = {}  # img_id -> cached features
        texts: List[dict] = []
        for idx, data_batch in enumerate(self.dataloader):
            runner.call_hook(f'before_{self.mode}_iter', batch_idx=idx, data_batch=data_batch)
            with torch.no_grad():
                data = model.data_preprocessor(data_batch, False)
                samples = data['data_samples']
                img_feats, txt_feats = model.encode_batch(data['inputs'], samples)
                new = {}  # the first row of each image not cached yet (a gallery image has several texts)
                for b, ds in enumerate(samples):
                    if ds.metainfo['img_id'] not in images:
                        new.setdefault(ds.metainfo['img_id'], b)
                images.update(zip(new, split_cached(img_feats, list(new.values()))))
                texts += split_cached(txt_feats)
            img_ids += [ds.metainfo['img_id'] for ds in samples]
            img_paths += [ds.metainfo.get('img_path') for ds in samples]
            text_ids += [(ds.metainfo.get('text_id'), ds.metainfo.get('text')) for ds in samples]
            runner.call_hook(f'after_{self.mode}_iter', batch_idx=idx, data_batch=data_batch, outputs=samples)
        img_ids = [i for part in all_gather_object(img_ids) for i in part]
        img_paths = [p for part in all_gather_object(img_paths) for p in part]
        text_ids = [t for part in all_gather_object(text_ids) for t in part]
        texts = [t for part in all_gather_object(texts) for t in part]
        images = {key: v for part in all_gather_object(images) for key, v in part.items()}
        first, text_to_image = group_texts_by_image(img_ids)
        device = next(model.parameters()).device
        i2t, t2i = model.rank_gallery([images[img_ids[i]] for i in first], texts, device=device)
        self.evaluator.process(data_samples=[dict(
            i2t_scores=i2t.cpu(), t2i_scores=t2i.cpu(), text_to_image=text_to_image,
            img_ids=[img_ids[i] for i in first], texts=[text for _, text in text_ids],
            text_ids=[i if tid is None else tid for i, (tid, _) in enumerate(text_ids)])], data_batch=None)
        out_dir = retrieval_out_dir(runner) if self.mode == 'test' else None
        if out_dir is not None and is_main_process():  # tools/test.py --show-dir: top-k captions / images
            save_retrieval_drawings(out_dir, [img_paths[i] for i in first], [img_ids[i] for i in first],
                                    [text for _, text in text_ids], i2t, t2i, text_to_image)
        return self.evaluator.evaluate(1)


@LOOPS.register_module()
class RetrievalValLoop(_RetrievalMixin, ValLoop):
    """``ValLoop`` for image-text retrieval (see the mixin)."""
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
    """``TestLoop`` for image-text retrieval (see the mixin)."""
    mode = 'test'

    def run(self) -> dict:
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        metrics = self._retrieve()
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics
