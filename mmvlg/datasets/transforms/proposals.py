"""Box proposals of each image, read from a file: detections in MAttNet's / X-VLM's style (per image a list of
boxes, JSON) or an MMDetection detector's predictions (the ``.pkl`` of mmdet's ``tools/test.py --out``).

Used by weakly supervised referring-expression comprehension (X-VLM's Grad-CAM scoring of proposals): the
model picks one of an image's proposals for each expression.
"""
import codecs
import collections
import importlib
import io
import json
import os.path as osp
import pickle
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import LoadAnnotations as MMCVLoadAnnotations

from mmvlg.registry import TRANSFORMS


def _load_storage(data: bytes):
    """A pickled torch storage, unpickled with ``weights_only=True`` (no code runs)."""
    return torch.load(io.BytesIO(data), weights_only=True)


class _ResultsUnpickler(pickle.Unpickler):
    """Unpickles what MMEngine's ``dump`` writes for detection results (dicts, lists, tensors, numpy arrays) and
    refuses any other global (which would import or call code)."""

    ALLOWED = {
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
        ('torch._utils', '_rebuild_tensor'): torch._utils._rebuild_tensor,
        ('torch.storage', '_load_from_bytes'): _load_storage,
        ('_codecs', 'encode'): codecs.encode,
        ('numpy', 'ndarray'): np.ndarray,
        ('numpy', 'dtype'): np.dtype,
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module in ('numpy.core.multiarray', 'numpy._core.multiarray') and name in ('_reconstruct', 'scalar'):
            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(f'{module}.{name} is not allowed in a results file')


def _as_array(boxes, where: str) -> np.ndarray:
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] < 4:
        raise ValueError(f'{where}: expected a list of boxes of at least 4 numbers, got shape {arr.shape}')
    return arr


def _xywh_to_xyxy(arr: np.ndarray) -> np.ndarray:
    out = arr[:, :4].copy()
    out[:, 2:] += out[:, :2]
    return out


def load_proposal_file(path: str, box_format: str = 'xywh', score_thr: float = 0.0,
                       max_per_image: Optional[int] = None) -> Dict[str, Dict[str, np.ndarray]]:
    """Read a proposal file into ``{str(image id): dict(bboxes=(k, 4) float32 x1, y1, x2, y2 pixels of the original
    image, scores=(k,) float32 (1 where the file has none))}``.

    Formats, by content:

    * JSON dict ``{image_id: [box, ...]}`` (X-VLM's ``dets.json``): a box is a list whose first 4 numbers are
      the box in ``box_format`` (X-VLM / MAttNet: ``'xywh'``), or a dict with ``box`` or ``bbox`` (and an optional
      ``score``), e.g. SynthRef's ``annotations/scenes_{split}.json`` (``bbox`` in ``'xyxy'``).
    * JSON list of MAttNet detections ``[{'image_id', 'box' (or 'bbox'), 'score'?, ...}, ...]``.
    * ``.pkl`` / ``.pickle``: MMDetection's results (``tools/test.py --out``), a list of dicts with ``img_id`` and
      ``pred_instances`` (``bboxes`` x1, y1, x2, y2, ``scores``); unpickled with an allow-list (tensors, arrays,
      dicts) that runs no code. ``box_format`` does not apply.

    Boxes scoring below ``score_thr`` are dropped (boxes without a score are kept), then at most ``max_per_image``
    of the best are kept.

    Raises:
        FileNotFoundError: No such file.
        ValueError: A malformed entry, naming the file and the image id.
    """
    if box_format not in ('xywh', 'xyxy'):
        raise ValueError(f'load_proposal_file: box_format must be "xywh" or "xyxy", got {box_format!r}')
    if not osp.isfile(path):
        raise FileNotFoundError(f'proposal file {path!r} does not exist')
    per_image: Dict[str, list] = collections.defaultdict(list)  # (box xyxy, score or None)
    if path.endswith(('.pkl', '.pickle')):
        with open(path, 'rb') as f:
            results = _ResultsUnpickler(f).load()
        if not isinstance(results, (list, tuple)):
            raise ValueError(f'{path}: an MMDetection results file is a list of dicts, got {type(results).__name__}')
        for k, res in enumerate(results):
            if not isinstance(res, dict) or 'img_id' not in res or 'pred_instances' not in res:
                raise ValueError(f'{path}: entry {k} has no img_id / pred_instances (tools/test.py --out output)')
            where = f'{path}: image {res["img_id"]}'
            boxes = _as_array(res['pred_instances'].get('bboxes', []), where)[:, :4]
            scores = res['pred_instances'].get('scores')
            scores = (np.asarray(scores.cpu() if isinstance(scores, torch.Tensor) else scores, dtype=np.float32)
                      if scores is not None else [None] * len(boxes))
            per_image[str(res['img_id'])] += list(zip(boxes, scores))
    else:
        with open(path) as f:
            data = json.load(f)
        if isinstance(data, dict):
            items = [(img_id, det) for img_id, dets in data.items() for det in (dets or [])]
            for img_id, dets in data.items():
                per_image.setdefault(str(img_id), [])
        elif isinstance(data, list):
            items = []
            for k, det in enumerate(data):
                if not isinstance(det, dict) or 'image_id' not in det:
                    raise ValueError(f'{path}: detection {k} has no image_id (MAttNet detections are dicts with '
                                     'image_id and box)')
                items.append((det['image_id'], det))
        else:
            raise ValueError(f'{path}: expected a JSON dict or list of detections, got {type(data).__name__}')
        for img_id, det in items:
            where = f'{path}: image {img_id}'
            score = None
            if isinstance(det, dict):
                box = det.get('box', det.get('bbox'))
                if box is None:
                    raise ValueError(f'{where}: a detection without "box" or "bbox": {det}')
                score = det.get('score')
            else:
                box = det
            arr = _as_array([box], where)
            xyxy = _xywh_to_xyxy(arr) if box_format == 'xywh' else arr[:, :4]
            per_image[str(img_id)].append((xyxy[0], score))
    out = {}
    for img_id, dets in per_image.items():
        kept = [(b, s) for b, s in dets if s is None or float(s) >= score_thr]
        if max_per_image is not None:
            kept = sorted(kept, key=lambda bs: -(float('inf') if bs[1] is None else float(bs[1])))[:max_per_image]
        boxes = np.stack([b for b, _ in kept]).astype(np.float32) if kept else np.zeros((0, 4), dtype=np.float32)
        scores = np.array([1.0 if s is None else float(s) for _, s in kept], dtype=np.float32)
        out[img_id] = dict(bboxes=boxes, scores=scores)
    return out


@TRANSFORMS.register_module()
class LoadProposals(MMCVLoadAnnotations):
    """Add the proposals of the sample's image from a proposal file (:func:`load_proposal_file`), as MMDetection
    carries them: ``proposals`` (k, 4) float32 x1, y1, x2, y2 in pixels of the **original** image (no later
    transform moves them) and ``proposals_scores`` (k,) (the detector's, or ones); ``PackGroundingInputs`` (as
    mmdet's ``PackDetInputs``) packs them into the data sample's ``proposals`` (``InstanceData``).

    It is an annotation-loading step (a subclass of mmcv's ``LoadAnnotations``): the inference pipeline of
    :class:`~mmvlg.apis.GroundingInferencer` leaves it out, as it leaves out the ground truth.

    Args:
        proposal_file (str): The file (read once, on first use: a generated data set may write it first).
        id_key (str): The data_info key holding the image id of the file. Defaults to ``'original_id'`` (the COCO
            image id in MDETR's RefCOCO files; the scene id of SynthRef).
        box_format (str): ``'xywh'`` (X-VLM's / MAttNet's detections, the default) or ``'xyxy'`` (JSON files only).
        score_thr (float): Drop proposals scoring lower. Defaults to 0.
        max_per_image (int, optional): Keep at most this many best-scored proposals.
        allow_empty (bool): An image listed with no proposal is an error unless True. Defaults to False.

    Raises:
        KeyError: The sample's image is not in the file (naming the file and the image id).
    """

    def __init__(self, proposal_file: str, id_key: str = 'original_id', box_format: str = 'xywh',
                 score_thr: float = 0.0, max_per_image: Optional[int] = None, allow_empty: bool = False) -> None:
        if box_format not in ('xywh', 'xyxy'):
            raise ValueError(f'LoadProposals: box_format must be "xywh" or "xyxy", got {box_format!r}')
        self.proposal_file = proposal_file
        self.id_key = id_key
        self.box_format = box_format
        self.score_thr = score_thr
        self.max_per_image = max_per_image
        self.allow_empty = allow_empty
        self._proposals: Optional[Dict[str, np.ndarray]] = None

    @property
    def proposals(self) -> Dict[str, Dict[str, np.ndarray]]:
        """The file's proposals per image id (read on first access)."""
        if self._proposals is None:
            self._proposals = load_proposal_file(self.proposal_file, self.box_format, self.score_thr,
                                                 self.max_per_image)
        return self._proposals

    def transform(self, results: dict) -> dict:
        if self.id_key not in results:
            raise KeyError(f'LoadProposals: the sample {results.get("img_id")!r} ({results.get("img_path")}) has '
                           f'no {self.id_key!r} to look up in {self.proposal_file}')
        img_id = str(results[self.id_key])
        found = self.proposals.get(img_id)
        if found is None:
            raise KeyError(f'proposal file {self.proposal_file} has no proposals for image {img_id} '
                           f'({self.id_key} of sample {results.get("img_id")!r}, {results.get("img_path")})')
        if not len(found['bboxes']) and not self.allow_empty:
            raise ValueError(f'proposal file {self.proposal_file} lists no proposal for image {img_id} (set '
                             'allow_empty=True to predict no box for it)')
        results['proposals'] = found['bboxes'].copy()
        results['proposals_scores'] = found['scores'].copy()
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(proposal_file={self.proposal_file!r}, id_key={self.id_key!r}, '
                f'box_format={self.box_format!r})')


__all__: Sequence[str] = ['load_proposal_file', 'LoadProposals']
