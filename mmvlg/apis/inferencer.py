"""Inference with grounding models: images and referring expressions in, ranked boxes out."""
import copy
import functools
import json
import os
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import mmcv
import mmengine
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmcv.transforms import LoadAnnotations as MMCVLoadAnnotations
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.infer import BaseInferencer
from mmengine.registry import FUNCTIONS, init_default_scope
from mmengine.visualization import Visualizer

from mmvlg.registry import INFERENCERS, TRANSFORMS, VISUALIZERS

ImageType = Union[str, os.PathLike, np.ndarray, Any]  # Any: a PIL.Image.Image
InputsType = Union[ImageType, Sequence[ImageType]]
TextsType = Union[str, Sequence[Union[str, Sequence[str]]]]

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')
DEFAULT_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackGroundingInputs')]


def get_test_pipeline_cfg(cfg: Union[Config, ConfigDict]) -> List[dict]:
    """The test pipeline of a config: ``test_dataloader.dataset.pipeline``, looking through dataset wrappers
    (the first dataset of a ``ConcatDataset``, the inner dataset of a ``RepeatDataset``, ...).

    Args:
        cfg (Config): A full config.

    Returns:
        list[dict]: A copy of the pipeline; ``[LoadImageFromFile, PackGroundingInputs]`` when the config has
        no test dataloader.
    """
    dataset = cfg.get('test_dataloader', {}).get('dataset')
    while dataset is not None and 'pipeline' not in dataset:
        if dataset.get('datasets'):
            dataset = dataset['datasets'][0]
        elif dataset.get('dataset') is not None:
            dataset = dataset['dataset']
        else:
            dataset = None
    if dataset is None:
        return copy.deepcopy(DEFAULT_PIPELINE)
    return [dict(step) for step in copy.deepcopy(dataset['pipeline'])]


def to_bgr_uint8(image: Any, name: str = 'image') -> np.ndarray:
    """An image array as the pipeline takes it: (H, W, 3) ``uint8`` in BGR order (OpenCV's and MMDetection's
    convention, as ``mmcv.imread`` returns it).

    Accepted: a ``PIL.Image`` (any mode; converted from RGB, so its colours stay right) and numpy arrays in
    **BGR(A)** order, as MMDetection's ``DetInferencer`` takes them (``cv2.imread``; flip an RGB array with
    ``img[..., ::-1]``): (H, W) or (H, W, 1) grey, (H, W, 3) BGR, (H, W, 4) BGRA (the alpha channel is dropped);
    ``uint8``, ``uint16`` (scaled by 255 / 65535), other integer types with values in [0, 255], ``bool``
    (a mask: 0 / 255) and floating-point types with values in [0, 1] (scaled by 255).

    Args:
        image (np.ndarray | PIL.Image.Image): The image.
        name (str): What to call it in error messages. Defaults to ``'image'``.

    Returns:
        np.ndarray: A C-contiguous (H, W, 3) ``uint8`` BGR array.

    Raises:
        TypeError: Not an array or PIL image, or an array of a type that is not a number.
        ValueError: An array of another shape (the message gives it), an empty one, or values out of range.
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        rgb = np.asarray(image.convert('RGB'))
        return np.ascontiguousarray(rgb[..., ::-1])
    if not isinstance(image, np.ndarray):
        raise TypeError(f'{name}: expected a file path, a numpy array or a PIL image, got {type(image).__name__}')
    img = image
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (3, 4))):
        raise ValueError(f'{name}: expected an (H, W) grey, (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA array, '
                         f'got shape {tuple(image.shape)}')
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f'{name}: the array is empty (shape {tuple(image.shape)})')
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif img.dtype == np.uint16:
        img = np.round(img.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    elif np.issubdtype(img.dtype, np.floating):
        low, high = float(np.nanmin(img)), float(np.nanmax(img))
        if not (np.isfinite(img).all() and low >= 0.0 and high <= 1.0):
            raise ValueError(f'{name}: a floating-point image must have finite values in [0, 1], got the range '
                             f'[{low:g}, {high:g}]; pass 0-255 values as uint8 (img.astype(np.uint8))')
        img = np.round(img * 255.0).astype(np.uint8)
    elif np.issubdtype(img.dtype, np.integer):
        if img.dtype != np.uint8:
            low, high = int(img.min()), int(img.max())
            if low < 0 or high > 255:
                raise ValueError(f'{name}: an integer image of dtype {img.dtype} must have values in [0, 255], '
                                 f'got the range [{low}, {high}] (uint16 images are scaled)')
            img = img.astype(np.uint8)
    else:
        raise TypeError(f'{name}: unsupported array dtype {img.dtype} (use uint8, uint16, bool or float in [0, 1])')
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img)


def check_image_file(path: str, name: str = 'image') -> None:
    """Raise a clear error, naming the path, for a local image file that does not exist or is no image, from
    its header (:class:`~mmvlg.datasets.validation.ImageFileChecker`; damage past the header is found when the
    pipeline decodes it). Paths with a URL scheme (``s3://...``, ``http://...``) are left to MMEngine's file
    backends.

    Raises:
        FileNotFoundError: No such file (or a directory without images).
        ImageError: The file is not an image (e.g. a text file named ``.jpg``, a zero-byte file).
    """
    if '://' in path:
        return
    if osp.isdir(path):
        raise FileNotFoundError(f'{name}: {path!r} is a directory without image files ({", ".join(IMG_EXTENSIONS)})')
    from mmvlg.datasets.validation import ImageFileChecker
    problem = ImageFileChecker()(path)
    if problem is not None:
        error, message = problem
        raise error(f'{name}: {message}')

def _transform_class(step: dict) -> type:
    kind = step['type']
    if isinstance(kind, type):
        return kind
    cls = TRANSFORMS.get(kind)
    if cls is None:
        raise KeyError(f'transform {kind!r} of the test pipeline is not registered')
    return cls


class GroundingInferencePipeline:
    """The test pipeline for inference: the config's pipeline without its annotation-loading steps (there is
    no ground truth at inference), with the image loaded from a file or taken from an array.

    Called on ``dict(img_path=..., text=...)`` or ``dict(img=<BGR array>, text=...)``.

    Args:
        pipeline (list[dict]): The config's test pipeline. Its image-loading step (a subclass of mmcv's
            ``LoadImageFromFile``) is used for paths; ``mmdet.LoadImageFromNDArray`` replaces it for arrays.
    """

    def __init__(self, pipeline: Sequence[dict]) -> None:
        loaders, rest = [], []
        for step in pipeline:
            cls = _transform_class(step)
            if issubclass(cls, MMCVLoadImageFromFile):
                loaders.append(step)
            elif not issubclass(cls, MMCVLoadAnnotations):
                rest.append(step)
        if len(loaders) != 1:
            raise ValueError(f'the test pipeline must have exactly one image-loading step, got {len(loaders)}: '
                             f'{pipeline}')
        ndarray_loader = dict(type='mmdet.LoadImageFromNDArray', to_float32=loaders[0].get('to_float32', False))
        self.from_file = Compose([TRANSFORMS.build(t) for t in [loaders[0], *rest]])
        self.from_ndarray = Compose([TRANSFORMS.build(t) for t in [ndarray_loader, *rest]])

    def __call__(self, item: dict) -> dict:
        return (self.from_ndarray if 'img' in item else self.from_file)(dict(item))


@INFERENCERS.register_module()
class GroundingInferencer(BaseInferencer):
    """Referring-expression grounding of images: for each (image, expression) pair, the boxes ranked by score.

    Images are paths (``str``, ``pathlib.Path``, URLs MMEngine's file backends read), ``PIL.Image`` objects
    (RGB; converted) or numpy arrays. **Arrays are BGR**, as in MMDetection (``cv2.imread``/``mmcv.imread``
    order; the pipeline and the data preprocessor's ``bgr_to_rgb`` expect it): grey (H, W) or (H, W, 1), BGR
    (H, W, 3) or BGRA (H, W, 4), ``uint8``, ``uint16`` or float in [0, 1] (:func:`to_bgr_uint8`). Pass an RGB
    array (e.g. ``np.asarray(pil_image)``) as ``rgb[..., ::-1]``, or pass the PIL image itself.

    Preprocessing follows the config's test pipeline (``test_dataloader.dataset.pipeline``, the first
    dataset's for a ``ConcatDataset``) without ``LoadGroundingAnnotations``; arrays are loaded with
    ``mmdet.LoadImageFromNDArray``. Checkpoints are loaded with ``torch.load(weights_only=True)`` from a path
    or any URL scheme MMEngine knows (mmvlg replaces each of MMEngine's checkpoint loaders, see
    :mod:`mmvlg.utils.checkpoint`).

    Example:
        >>> inferencer = GroundingInferencer('configs/mdetr/...synthref.py', 'epoch_6.pth', device='cpu')
        >>> out = inferencer('scene.png', ['the red circle', 'the blue square'], topk=1)
        >>> out['predictions'][0][1]  # image 0, expression 1
        {'text': 'the blue square', 'bboxes': [[x1, y1, x2, y2]], 'scores': [0.93]}

    Args:
        model (str | Config | dict, optional): Config file path or config. None to read the config from the
            checkpoint's ``meta['cfg']``: it is parsed as literal data (:func:`mmvlg.utils.safe_config.
            config_from_text`), never executed, and a stored config that holds anything else (imports, calls,
            names, ...) is refused with an error that asks for the config file.
        weights (str, optional): Checkpoint path. Without it the model keeps its random weights (with a
            warning). Every model weight must be in it with its shape, and every weight in it must be in the
            model, except the keys allowed by the ``allow_missing``/``allow_unexpected`` regular expressions of
            a ``CheckpointKeysHook`` entry in the config's ``custom_hooks``; otherwise a
            :class:`~mmvlg.utils.checkpoint_keys.CheckpointKeysError` lists the keys.
        device (str, optional): ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ... Defaults to the available device.
        scope (str): Default registry scope. Defaults to ``'mmvlg'``.
        show_progress (bool): Show a progress bar over the batches. Defaults to False.
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = {'topk', 'pred_score_thr'}
    visualize_kwargs: set = {'return_vis', 'show', 'wait_time', 'img_out_dir', 'heatmap', 'heatmap_layers'}
    postprocess_kwargs: set = {'return_datasamples', 'print_result', 'pred_out_dir'}

    def __init__(self,
                 model: Union[str, Config, ConfigDict, dict, None] = None,
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 scope: str = 'mmvlg',
                 show_progress: bool = False) -> None:
        from mmvlg.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        init_default_scope(scope)
        self.num_visualized_imgs = 0
        self._checkpoint_cache: Optional[Tuple[str, dict]] = None
        if model is None:
            # MMEngine would run the config text stored in the checkpoint through Config.fromstring (exec);
            # it is only read as literal data here.
            model = self._config_from_checkpoint(weights)
        super().__init__(model=model, weights=weights, device=device, scope=scope, show_progress=show_progress)

    # ---------------------------------------------------------------------------------------- set-up
    def _load_checkpoint(self, weights: str) -> dict:
        """The checkpoint at ``weights``, loaded with ``weights_only=True`` (once per path)."""
        if self._checkpoint_cache is not None and self._checkpoint_cache[0] == weights:
            return self._checkpoint_cache[1]
        from mmengine.runner.checkpoint import _load_checkpoint

        from mmvlg.utils import safe_load_checkpoint
        if osp.isfile(osp.expanduser(weights)):
            checkpoint = safe_load_checkpoint(weights, map_location='cpu')
        else:  # URLs etc. go through MMEngine's loaders (the local one is mmvlg's safe loader)
            checkpoint = _load_checkpoint(weights, map_location='cpu')
        if not isinstance(checkpoint, dict):
            raise TypeError(f'checkpoint {weights!r} holds a {type(checkpoint).__name__}, not a checkpoint dict')
        self._checkpoint_cache = (weights, checkpoint)
        return checkpoint

    def _config_from_checkpoint(self, weights: Optional[str]) -> Config:
        """The config stored in a checkpoint (``message_hub.runtime_info.cfg`` or ``meta['cfg']``, as MMEngine
        looks for it), read with :func:`mmvlg.utils.safe_config.config_from_text`: literal data only, never
        executed."""
        from mmvlg.utils.safe_config import config_from_text
        if weights is None:
            raise ValueError('GroundingInferencer: give a config (model=...) or a checkpoint (weights=...) that '
                             'stores its config')
        checkpoint = self._load_checkpoint(weights)
        runtime_info = (checkpoint.get('message_hub') or {}).get('runtime_info') or {}
        if isinstance(runtime_info.get('cfg'), str):
            text, where = runtime_info['cfg'], "message_hub['runtime_info']['cfg']"
        elif isinstance((checkpoint.get('meta') or {}).get('cfg'), str):
            text, where = checkpoint['meta']['cfg'], "meta['cfg']"
        else:
            raise ValueError(f'checkpoint {weights!r} stores no config (meta["cfg"]); pass the config file as '
                             'GroundingInferencer(model=CONFIG, weights=...)')
        return config_from_text(text, source=f'of checkpoint {weights!r} ({where})')

    def _init_model(self, cfg: Union[Config, ConfigDict], weights: Optional[str], device: str = 'cpu'):
        """Build the model of ``cfg`` and load ``weights`` into it (see :meth:`_load_weights_to_model`)."""
        if not cfg:  # BaseInferencer would Config.fromstring() the checkpoint's config; never here
            raise ValueError('GroundingInferencer: no config to build the model from')
        checkpoint = self._load_checkpoint(weights) if weights is not None else None
        if cfg.model.get('pretrained') is not None:  # the checkpoint has the weights
            del cfg.model.pretrained
        from mmvlg.registry import MODELS
        model = MODELS.build(cfg.model)
        model.cfg = cfg
        self._load_weights_to_model(model, checkpoint, cfg, weights)
        model.to(device)
        model.eval()
        self._checkpoint_cache = None
        return model

    def _load_weights_to_model(self, model: torch.nn.Module, checkpoint: Optional[dict],
                               cfg: Optional[Union[Config, ConfigDict]], weights: Optional[str] = None) -> None:
        """Load the checkpoint into the model after checking that it fills every weight.

        Keys that may differ are the ``allow_missing``/``allow_unexpected`` regular expressions of a
        ``CheckpointKeysHook`` entry of the config's ``custom_hooks``; any other missing, unexpected or
        shape-mismatched key is a :class:`~mmvlg.utils.checkpoint_keys.CheckpointKeysError`.
        """
        if checkpoint is None:
            return super()._load_weights_to_model(model, checkpoint, cfg)
        from mmengine.runner.checkpoint import _load_checkpoint_to_model

        from mmvlg.utils.checkpoint_keys import check_checkpoint_keys
        from mmvlg.utils.config_check import has_hook
        options: dict = {}
        for hook in (cfg.get('custom_hooks', None) or []) if cfg is not None else []:
            if isinstance(hook, dict) and has_hook([hook], 'CheckpointKeysHook'):
                options = {k: hook[k] for k in ('allow_missing', 'allow_unexpected', 'max_listed') if k in hook}
        check_checkpoint_keys(model, checkpoint, filename=weights, on_mismatch='error', **options)
        _load_checkpoint_to_model(model, checkpoint)

    def _init_pipeline(self, cfg: Union[Config, ConfigDict]) -> Callable:
        return GroundingInferencePipeline(get_test_pipeline_cfg(cfg))

    def _init_collate(self, cfg: Union[Config, ConfigDict]) -> Callable:
        # As Runner.build_dataloader: ``test_dataloader.collate_fn`` from MMEngine's FUNCTIONS (mmvlg has no
        # FUNCTIONS registry of its own), ``pseudo_collate`` by default.
        collate_cfg = copy.deepcopy(cfg.get('test_dataloader', {}).get('collate_fn', dict(type='pseudo_collate')))
        kind = collate_cfg.pop('type')
        collate_fn = FUNCTIONS.get(kind) if isinstance(kind, str) else kind
        if collate_fn is None:
            raise KeyError(f'collate function {kind!r} is not registered')
        return functools.partial(collate_fn, **collate_cfg) if collate_cfg else collate_fn

    def _init_visualizer(self, cfg: Union[Config, ConfigDict]) -> Optional[Visualizer]:
        if 'visualizer' not in cfg:
            cfg.visualizer = dict(type='GroundingVisualizer')
        cfg.visualizer = dict(cfg.visualizer)
        cfg.visualizer.pop('vis_backends', None)  # draw to arrays and files only; no TensorBoard etc.
        cfg.visualizer.pop('save_dir', None)
        name = cfg.visualizer.get('name', 'grounding_inferencer')
        if Visualizer.check_instance_created(name):
            name = f'{name}-{id(self)}-{len(Visualizer._instance_dict)}'
        cfg.visualizer['name'] = name
        return VISUALIZERS.build(cfg.visualizer)

    # ----------------------------------------------------------------------------------------- inputs
    def _inputs_to_list(self, inputs: InputsType) -> list:
        """A list of images: the inputs as a list, a directory replaced by its image files (sorted)."""
        if isinstance(inputs, os.PathLike):
            inputs = os.fspath(inputs)
        if isinstance(inputs, str) and osp.isdir(inputs):
            names = sorted(n for n in os.listdir(inputs) if n.lower().endswith(IMG_EXTENSIONS))
            return [osp.join(inputs, n) for n in names if osp.isfile(osp.join(inputs, n))]
        images = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        return [os.fspath(i) if isinstance(i, os.PathLike) else i for i in images]

    def _pairs(self, inputs: InputsType, texts: TextsType) -> Tuple[List[ImageType], List[dict]]:
        """Expand the inputs into images and (image, expression) items, in order.

        A single image (or a directory) takes ``texts`` as one expression or a list of expressions (each
        image of a directory gets all of them). A list of images takes one entry per image, each an
        expression or a list of expressions, or one expression for all.
        """
        single = not isinstance(inputs, (list, tuple))
        images = self._inputs_to_list(inputs)
        if not images:
            raise ValueError('no input images')
        if isinstance(texts, str):
            per_image = [[texts]] * len(images)
        elif not isinstance(texts, (list, tuple)):
            raise TypeError(f'texts must be a string or a list, got {type(texts).__name__}')
        elif single:
            if not all(isinstance(t, str) for t in texts):
                raise TypeError('for a single image, texts must be a string or a list of strings')
            per_image = [list(texts)] * len(images)
        else:
            if len(texts) != len(images):
                raise ValueError(f'got {len(images)} images but {len(texts)} entries in texts; give one '
                                 'expression (or a list of expressions) per image, or a single string for all')
            per_image = [[t] if isinstance(t, str) else list(t) for t in texts]
        items = []
        for i, (image, expressions) in enumerate(zip(images, per_image)):
            if not expressions:
                raise ValueError(f'image {i} has no expression')
            if isinstance(image, str):
                check_image_file(image, f'image {i}')
            else:
                images[i] = image = to_bgr_uint8(image, f'image {i}')
            for j, text in enumerate(expressions):
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(f'image {i}, expression {j}: expected a non-empty string, got {text!r}')
                item = dict(img=image) if isinstance(image, np.ndarray) else dict(img_path=image)
                item.update(text=text, img_id=i, image_index=i, text_index=j)
                items.append(item)
        return images, items

    @staticmethod
    def _add_proposals(items: List[dict], proposals: Any, num_images: int, single: bool) -> None:
        """Set ``proposals`` (k, 4) and ``proposals_scores`` (ones) of every item from the per-image boxes, as
        ``LoadProposals`` sets them (``PackGroundingInputs`` packs them)."""
        per_image = [proposals] * num_images if single else list(proposals)
        if len(per_image) != num_images:
            raise ValueError(f'got {num_images} images but {len(per_image)} entries in proposals; give one (k, 4) '
                             'array of boxes per image')
        boxes = []
        for i, value in enumerate(per_image):
            array = np.asarray(value, dtype=np.float32)
            if array.ndim != 2 or array.shape[1] != 4 or not len(array):
                raise ValueError(f'proposals of image {i}: expected a (k, 4) array of x1, y1, x2, y2 boxes with '
                                 f'k >= 1, got shape {tuple(array.shape)}')
            if not np.isfinite(array).all() or ((array[:, 2] <= array[:, 0]) | (array[:, 3] <= array[:, 1])).any():
                raise ValueError(f'proposals of image {i}: every box needs finite x1 < x2 and y1 < y2')
            boxes.append(array)
        for item in items:
            item['proposals'] = boxes[item['image_index']].copy()
            item['proposals_scores'] = np.ones(len(item['proposals']), dtype=np.float32)

    def preprocess(self, inputs: List[dict], batch_size: int = 1, **kwargs):
        """Run the pipeline on each (image, expression) item and collate chunks of ``batch_size``."""
        chunks = self._get_chunk_data(map(self.pipeline, inputs), batch_size)
        yield from map(self.collate_fn, chunks)

    # ---------------------------------------------------------------------------------------- running
    @torch.no_grad()
    def forward(self, inputs: dict, topk: Optional[int] = 1, pred_score_thr: float = 0.0) -> List[DetDataSample]:
        """Predict a collated batch; keep the ``topk`` best boxes with a score of at least ``pred_score_thr``."""
        preds = self.model.test_step(inputs)
        for pred in preds:
            inst = pred.pred_instances
            inst = inst[inst.scores >= pred_score_thr]
            pred.pred_instances = inst[:topk] if topk is not None else inst
        return preds

    def __call__(self,
                 inputs: InputsType,
                 texts: TextsType,
                 batch_size: int = 1,
                 topk: Optional[int] = 1,
                 pred_score_thr: float = 0.0,
                 return_vis: bool = False,
                 show: bool = False,
                 wait_time: float = 0,
                 out_dir: str = '',
                 return_datasamples: bool = False,
                 print_result: bool = False,
                 heatmap: bool = False,
                 heatmap_layers: Optional[Sequence[int]] = None,
                 proposals: Optional[Any] = None) -> dict:
        """Ground each expression in its image.

        Args:
            inputs (str | os.PathLike | np.ndarray | PIL.Image.Image | list): An image path (``str`` or
                ``pathlib.Path``), a directory (its image files, sorted), a numpy array in **BGR** order as
                ``cv2.imread`` returns it (as MMDetection's ``DetInferencer`` takes arrays; (H, W) / (H, W, 1)
                grey, (H, W, 3) BGR or (H, W, 4) BGRA; ``uint8``, ``uint16``, or float in [0, 1]: see
                :func:`to_bgr_uint8`), a ``PIL.Image`` (RGB, converted), or a list of these. A missing or
                unreadable file is an error naming the path.
            texts (str | list): For a single image: an expression or a list of expressions (each is
                predicted). For a list of images: one entry per image, an expression or a list of them (or
                one string for every image).
            batch_size (int): (image, expression) pairs per forward pass. Defaults to 1.
            topk (int, optional): Boxes kept per expression, best first; None keeps all queries.
                Defaults to 1.
            pred_score_thr (float): Drop boxes scoring lower. Defaults to 0.
            return_vis (bool): Return the drawn images. Defaults to False.
            show (bool): Show the drawn images in a window. Defaults to False.
            wait_time (float): Seconds each shown image stays up. Defaults to 0.
            out_dir (str): If given, write ``vis/<image>_<expression index>.jpg`` (drawings) and
                ``preds/<image>.json`` (predictions) under it.
            return_datasamples (bool): Return the ``DetDataSample``s instead of dicts. Defaults to False.
            print_result (bool): Print the predictions. Defaults to False.
            heatmap (bool): Draw each pair as the image beside its heat map (:meth:`attention_map`: the
                Grad-CAM map of a model with ``gradcam()`` such as X-VLM's weakly supervised grounding, the
                text-to-image attention of MDETR* or FIBER), with the kept boxes on both panels
                (:func:`~mmvlg.visualization.draw_attention`), instead of the boxes alone. Defaults to False.
            heatmap_layers (list[int], optional): The ``layers`` of :meth:`attention_map` for ``heatmap``.
            proposals (array-like | list, optional): Candidate boxes for models that rank given proposals
                (X-VLM's weakly supervised grounding, whose config reads them from a file in training and
                testing): (k, 4) x1, y1, x2, y2 in original-image pixels for a single image, or a list with one
                such array per image. Every expression of an image ranks that image's proposals.

        Returns:
            dict: ``predictions``: per image, a list with one entry per expression: ``dict(text, bboxes,
            scores)``, ``bboxes`` a list of [x1, y1, x2, y2] in original-image pixels sorted by ``scores``
            (or the ``DetDataSample``). ``visualization``: per image, per expression, the drawn image
            (RGB ``uint8``) with the expression as title and the best box in red (the other kept boxes in
            orange; with ``heatmap``, the image and heat-map panels side by side); None unless ``return_vis``.
        """
        if topk is not None and topk < 1:
            raise ValueError(f'topk must be >= 1 or None, got {topk}')
        images, items = self._pairs(inputs, texts)
        if proposals is not None:
            self._add_proposals(items, proposals, len(images), single=not isinstance(inputs, (list, tuple)))
        names = self._image_names(images)
        self.num_visualized_imgs += len(images)
        preds = []
        batches = self.preprocess(items, batch_size=batch_size)
        if self.show_progress:
            from rich.progress import track
            batches = track(batches, description='Inference', total=-(-len(items) // batch_size))
        for data in batches:
            preds.extend(self.forward(data, topk=topk, pred_score_thr=pred_score_thr))
        img_out_dir = osp.join(out_dir, 'vis') if out_dir else ''
        pred_out_dir = osp.join(out_dir, 'preds') if out_dir else ''
        vis = self.visualize(list(zip(items, [names[it['image_index']] for it in items])), preds,
                             return_vis=return_vis, show=show, wait_time=wait_time, img_out_dir=img_out_dir,
                             heatmap=heatmap, heatmap_layers=heatmap_layers)
        return self.postprocess(preds, vis, return_datasamples, print_result=print_result, pred_out_dir=pred_out_dir,
                                items=items, names=names)

    # -------------------------------------------------------------------------------------- outputs
    def _image_names(self, images: List[ImageType]) -> List[str]:
        names, used = [], set()
        for i, image in enumerate(images):
            if isinstance(image, str):
                name = osp.splitext(osp.basename(image))[0]
            else:
                name = f'{self.num_visualized_imgs + i:08d}'
            if name in used:
                name = f'{name}_{i:08d}'
            used.add(name)
            names.append(name)
        return names

    def visualize(self, inputs: List[Tuple[dict, str]], preds: List[DetDataSample], return_vis: bool = False,
                  show: bool = False, wait_time: float = 0, img_out_dir: str = '', heatmap: bool = False,
                  heatmap_layers: Optional[Sequence[int]] = None, **kwargs) -> Optional[List[np.ndarray]]:
        """Draw each pair: the expression as title, the kept boxes (best in red) and their scores.

        Args:
            inputs (list[tuple[dict, str]]): Each pair's item (``img`` or ``img_path``, ``text``) and the name
                of its image.
            preds (list[DetDataSample]): The predictions, in the same order.
            heatmap (bool): Draw the image beside its :meth:`attention_map` heat map (see :meth:`__call__`).
            heatmap_layers (list[int], optional): ``layers`` of :meth:`attention_map`.

        Returns:
            list[np.ndarray] or None: RGB drawings, if anything is to be drawn.
        """
        if not (return_vis or show or img_out_dir):
            return None
        if heatmap:
            return self._visualize_heatmaps(inputs, preds, show=show, wait_time=wait_time, img_out_dir=img_out_dir,
                                            layers=heatmap_layers)
        if self.visualizer is None:
            raise ValueError('drawing needs a visualizer in the config')
        drawings = []
        cache: Dict[int, np.ndarray] = {}
        for (item, name), pred in zip(inputs, preds):
            index = item['image_index']
            if index not in cache:
                cache = {index: self._load_rgb(item)}  # pairs of one image are consecutive
            out_file = osp.join(img_out_dir, f'{name}_{item["text_index"]}.jpg') if img_out_dir else None
            if hasattr(self.visualizer, 'topk'):
                self.visualizer.topk = max(len(pred.pred_instances), 1)
            self.visualizer.add_datasample(name, cache[index], pred, draw_gt=False, draw_pred=True, show=show,
                                           wait_time=wait_time, out_file=out_file)
            drawings.append(self.visualizer.get_image())
        return drawings

    def _visualize_heatmaps(self, inputs: List[Tuple[dict, str]], preds: List[DetDataSample], show: bool = False,
                            wait_time: float = 0, img_out_dir: str = '',
                            layers: Optional[Sequence[int]] = None) -> List[np.ndarray]:
        """RGB drawings of :func:`~mmvlg.visualization.draw_attention`: each pair's image beside its heat map,
        the kept boxes and their scores on both, the expression as title."""
        from mmvlg.visualization import draw_attention
        drawings = []
        for (item, name), pred in zip(inputs, preds):
            rgb = self._load_rgb(item)
            image = item['img'] if 'img' in item else np.ascontiguousarray(rgb[..., ::-1])
            heat = self.attention_map(image, item['text'], layers=layers)
            inst = pred.pred_instances.cpu()
            boxes = inst.bboxes.float().numpy() if len(inst) else None
            drawing = draw_attention(rgb[..., ::-1], heat, bboxes=boxes,
                                     scores=inst.scores.float().tolist() if len(inst) else None,
                                     text=item['text'], min_size=384)
            if img_out_dir:
                mmcv.imwrite(drawing, osp.join(img_out_dir, f'{name}_{item["text_index"]}.jpg'))
            drawing = np.ascontiguousarray(drawing[..., ::-1])
            if show:
                mmcv.imshow(drawing[..., ::-1], win_name=name, wait_time=int(wait_time * 1000))
            drawings.append(drawing)
        return drawings

    @staticmethod
    def _load_rgb(item: dict) -> np.ndarray:
        if 'img' in item:
            img = item['img']
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            return np.ascontiguousarray(img[..., ::-1])
        return mmcv.imfrombytes(mmengine.fileio.get(item['img_path']), channel_order='rgb')

    def postprocess(self, preds: List[DetDataSample], visualization: Optional[List[np.ndarray]],
                    return_datasamples: bool = False, print_result: bool = False, pred_out_dir: str = '',
                    items: Optional[List[dict]] = None, names: Optional[List[str]] = None,
                    **kwargs) -> Dict[str, Any]:
        """Group the predictions (and drawings) per image, write and print them on request.

        Returns:
            dict: ``predictions`` and ``visualization`` as described in :meth:`__call__`.
        """
        num_images = len(names)
        grouped: List[list] = [[] for _ in range(num_images)]
        grouped_vis: Optional[List[list]] = None if visualization is None else [[] for _ in range(num_images)]
        for k, (item, pred) in enumerate(zip(items, preds)):
            index = item['image_index']
            grouped[index].append(pred if return_datasamples else self.pred2dict(pred))
            if grouped_vis is not None:
                grouped_vis[index].append(visualization[k])
        if pred_out_dir:
            os.makedirs(pred_out_dir, exist_ok=True)
            for name, results in zip(names, grouped):
                dicts = [r if isinstance(r, dict) else self.pred2dict(r) for r in results]
                with open(osp.join(pred_out_dir, f'{name}.json'), 'w') as f:
                    json.dump(dicts, f)
        if print_result:
            print(json.dumps([[r if isinstance(r, dict) else self.pred2dict(r) for r in g] for g in grouped]))
        return dict(predictions=grouped, visualization=grouped_vis)

    @staticmethod
    def pred2dict(pred: DetDataSample) -> dict:
        """A JSON-serializable dict of one prediction: ``text``, ``bboxes`` and ``scores`` (best first)."""
        inst = pred.pred_instances.cpu()
        return dict(text=pred.metainfo.get('text', ''), bboxes=inst.bboxes.float().tolist(),
                    scores=inst.scores.float().tolist())

    # -------------------------------------------------------------------------------------- attention
    @torch.no_grad()
    def attention_map(self, image: ImageType, text: str, layers: Optional[Sequence[int]] = None) -> np.ndarray:
        """The text-to-image attention for one (image, expression) pair, in original-image pixels.

        MDETR*: the model's encoder ``cross_modal_attention`` (``layers``: encoder layers). FIBER: the fused
        text layers' text-to-image cross-attention, recorded with forward hooks
        (:func:`~mmvlg.visualization.attention.fusion_text_to_image_attention`; ``layers``: fused layers
        0 .. ``num_fusion_layers - 1``), averaged over the expression's tokens. A model with a ``gradcam(inputs,
        data_samples)`` method (X-VLM's weakly supervised grounding): its Grad-CAM heat map (``layers`` unused).
        The map (on the token grid of the padded input) is upsampled
        bilinearly to the padded input size, cropped to the valid (unpadded) image and resized back to the
        original image size (undoing the test-time resize).

        Args:
            image (str | os.PathLike | np.ndarray | PIL.Image.Image): Image path, BGR array or PIL image (as
                in :meth:`__call__`).
            text (str): The expression.
            layers (list[int], optional): Encoder (MDETR*) or fused (FIBER) layers to sum. Defaults to all.

        Returns:
            np.ndarray: (H, W) float32 attention, H x W the original image size.
        """
        if not isinstance(text, str):
            raise TypeError(f'text must be a string, got {type(text).__name__}')
        from mmvlg.models.backbones import FIBERBackbone
        from mmvlg.visualization.attention import fusion_text_to_image_attention
        fiber = isinstance(getattr(self.model, 'backbone', None), FIBERBackbone)
        gradcam = callable(getattr(self.model, 'gradcam', None))
        if not hasattr(self.model, 'cross_modal_attention') and not fiber and not gradcam:
            raise TypeError(f'{type(self.model).__name__} has neither an encoder cross_modal_attention() (MDETR*), '
                            'a FIBERBackbone with fused text-to-image attention nor a gradcam() (X-VLM)')
        _, items = self._pairs(image, text)
        data = self.model.data_preprocessor(self.collate_fn([self.pipeline(items[0])]), False)
        layers = None if layers is None else list(layers)
        if gradcam:  # (1, h, w) on the patch grid; it takes its gradients itself
            att = self.model.gradcam(data['inputs'], data['data_samples'])
        elif hasattr(self.model, 'cross_modal_attention'):
            att = self.model.cross_modal_attention(data['inputs'], data['data_samples'], layers=layers)
        else:
            att = fusion_text_to_image_attention(self.model, data['inputs'], data['data_samples'], layers=layers)
        sample = data['data_samples'][0]
        att = F.interpolate(att[:, None].float(), size=data['inputs'].shape[-2:], mode='bilinear',
                            align_corners=False)
        h, w = sample.img_shape
        att = att[..., :h, :w]
        if tuple(sample.ori_shape) != (h, w):
            att = F.interpolate(att, size=tuple(sample.ori_shape), mode='bilinear', align_corners=False)
        return att[0, 0].cpu().numpy().astype(np.float32)
