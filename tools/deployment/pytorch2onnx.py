"""Export an mmvlg grounding detector to ONNX: image + tokenized text in, boxes and scores out.

The tokenizer stays outside the graph (run ``model.tokenize(texts)``, or any tokenizer with the
same vocabulary) and so do the data preprocessor's normalization and the final sorting / NMS:

- MDETR / MDETR* (``MDETR``): ``image`` (bs, 3, H, W) float, normalized as the config's data preprocessor does
  (mean/std, RGB), not padded; ``input_ids``, ``attention_mask`` (bs, L) int64 -> ``boxes`` (bs, Q, 4) x1, y1,
  x2, y2 in pixels of ``image`` and ``scores`` (bs, Q), ``1 - p(no object)`` of every query (unsorted; top-1 is
  ``scores.argmax(1)``). Dynamic batch, text length and image size; with two-stage token queries
  (``token_queries=...``, the SynthRef configs) the image size is fixed at export (the queries' cell centres
  are computed from Python sizes).
- FIBER's fine-grained detector (``FIBER``) without deformable convolutions: the same inputs -> the ATSS head's
  raw outputs per level ``cls_logits_<l>`` (bs, H_l*W_l*A, L), ``bbox_preds_<l>`` (bs, 4A, H_l, W_l),
  ``centerness_<l>`` (bs, A, H_l, W_l); decoding, token grouping and NMS stay in Python (mmdet's
  ``ATSSVLFusionHead.predict_by_feat``). FIBER's reference configs (``use_dcn=True`` in the DyHead) do not export
  for onnxruntime: mmcv's ``ModulatedDeformConv2d`` exports only as mmcv's custom op ``MMCVModulatedDeformConv2d``,
  which onnxruntime does not implement (mmcv 2.x ships no onnxruntime op library). Image size and batch are
  fixed at export (the Swin windows and the DyHead's level sizes are traced as constants).

Usage:
    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --out model.onnx [--shape 128 128] [--verify]

``--verify`` runs the file with onnxruntime on the export inputs and on a second batch / text length and
compares with PyTorch; ``--benchmark N`` prints the CPU latency of both. See docs/deployment.md.
"""
import argparse
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

DEFAULT_TEXTS = ('the small red circle left of the blue square', 'the big green diamond')


class MDETRExportWrapper(nn.Module):
    """MDETR's prediction as a function of tensors (``predict`` without data samples and without sorting).

    Same computation as :meth:`MDETR.predict` for unpadded images whose ``img_shape`` is the input size and
    ``rescale=False``: backbone, neck, sine positions of an all-valid mask, the text encoder on the given ids,
    the vision-language encoder, the predicting decoder and its head.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tuple[Tensor, Tensor]:
        m = self.model
        feat = m.extract_feat(image)[-1]
        bs, _, h, w = feat.shape
        mask = feat.new_zeros((bs, h, w), dtype=torch.bool)
        pos = m.positional_encoding(mask)
        img_tokens = feat.flatten(2).transpose(1, 2)
        img_pos = pos.flatten(2).transpose(1, 2).to(img_tokens.dtype)
        text = m.language_model.encode(input_ids, attention_mask)
        txt_tokens = m.text_proj(text['embeds']).to(img_tokens.dtype)
        x = torch.cat([img_tokens, txt_tokens], dim=1)
        x_pos = torch.cat([img_pos, torch.zeros_like(txt_tokens)], dim=1)
        x_mask = torch.cat([mask.flatten(1), ~text['mask']], dim=1)
        memory, _ = m.encoder(x, x_pos, x_mask, False)
        img_h, img_w = image.shape[-2:]
        enc = dict(memory=memory, memory_pos=x_pos, memory_mask=x_mask, text=text,
                   num_img_tokens=img_tokens.shape[1], feat_shape=(h, w), input_shape=(img_h, img_w),
                   attn_weights=None)
        samples = [_ShapeSample((img_h, img_w))]  # one sample: what the token queries read (broadcast over bs)
        head = m.bbox_head if m.predict_with == 'main' else m.aux_head
        hidden, reference = m.decode_with_reference(enc, m.predict_with, samples)
        logits, boxes = head(hidden[-1:], reference)
        scores = 1 - logits[0].softmax(-1)[..., -1]
        cx, cy, bw, bh = boxes[0].unbind(-1)
        scale_w, scale_h = torch.as_tensor(img_w).to(boxes), torch.as_tensor(img_h).to(boxes)
        xyxy = torch.stack([(cx - bw / 2) * scale_w, (cy - bh / 2) * scale_h, (cx + bw / 2) * scale_w,
                            (cy + bh / 2) * scale_h], dim=-1)
        return xyxy, scores


class FIBERExportWrapper(nn.Module):
    """FIBER's fine-grained detector up to the ATSS head's raw outputs (all levels, flattened into a tuple)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tuple[Tensor, ...]:
        m = self.model
        offsets = input_ids.new_zeros(input_ids.shape + (2, ))
        tokens = dict(input_ids=input_ids, attention_mask=attention_mask, offsets=offsets)
        visual, text = m.backbone(image, None, None, fusion=m.fusion, tokens=tokens)
        cls_logits, bbox_preds, centerness = m.bbox_head(m.neck(visual), m.bbox_head.language_feats(text))
        return tuple(cls_logits) + tuple(bbox_preds) + tuple(centerness)


class _ShapeSample:
    """The one field of a data sample the prediction path reads without labels: ``img_shape``."""

    def __init__(self, img_shape: Tuple[int, int]) -> None:
        self.img_shape = img_shape
        self.metainfo = dict(img_shape=img_shape)


def export_kind(model: nn.Module) -> str:
    from mmvlg.models.detectors import FIBER, MDETR
    if isinstance(model, MDETR):
        return 'mdetr'
    if isinstance(model, FIBER):
        return 'fiber'
    raise TypeError(f'pytorch2onnx: {type(model).__name__} is not exportable (MDETR or FIBER only)')


def check_exportable(model: nn.Module) -> None:
    """Refuse what onnxruntime cannot run, naming the config key."""
    from mmcv.ops import ModulatedDeformConv2d
    dcn = [name for name, mod in model.named_modules() if isinstance(mod, ModulatedDeformConv2d)]
    if dcn:
        raise RuntimeError(
            f'pytorch2onnx: the model has {len(dcn)} ModulatedDeformConv2d layers (first: {dcn[0]}); mmcv exports '
            'them only as its custom op MMCVModulatedDeformConv2d, which onnxruntime does not implement. Export '
            'a model with model.bbox_head.use_dcn=False (FIBER) or run it in PyTorch.')


def wrap(model: nn.Module) -> nn.Module:
    check_exportable(model)
    wrapper = MDETRExportWrapper(model) if export_kind(model) == 'mdetr' else FIBERExportWrapper(model)
    return wrapper.eval()


def fixed_image_size(model: nn.Module) -> bool:
    """Whether the export has to fix H, W (see the module docstring)."""
    if export_kind(model) == 'fiber':
        return True
    return getattr(model.get_query_generator(model.predict_with), 'requires_token_scores', False)


def output_names(model: nn.Module, num_levels: int = 0) -> List[str]:
    if export_kind(model) == 'mdetr':
        return ['boxes', 'scores']
    return [f'{k}_{i}' for k in ('cls_logits', 'bbox_preds', 'centerness') for i in range(num_levels)]


def example_inputs(model: nn.Module, texts: Sequence[str], shape: Tuple[int, int],
                   seed: int = 0) -> Dict[str, Tensor]:
    """A normalized random image per text (bs = len(texts)) and the texts tokenized by the model's tokenizer."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn((len(texts), 3) + tuple(shape), generator=gen)
    tok = model.tokenize(list(texts))
    return dict(image=image, input_ids=tok['input_ids'].long(), attention_mask=tok['attention_mask'].long())


def other_inputs(model: nn.Module, shape: Tuple[int, int]) -> Dict[str, Tensor]:
    """Inputs unlike the export example along every dynamic axis: another text length, and for MDETR another
    batch size (and image size where it is dynamic)."""
    if export_kind(model) == 'fiber':
        return example_inputs(model, DEFAULT_TEXTS[1:], shape, seed=1)
    other = shape if fixed_image_size(model) else (shape[0] + 32, shape[1] - 32)
    return example_inputs(model, (DEFAULT_TEXTS[1], 'the leftmost square'), other, seed=1)


def export(model: nn.Module, out_file: str, shape: Tuple[int, int] = (128, 128),
           texts: Sequence[str] = DEFAULT_TEXTS[:1], opset: int = 17) -> Dict[str, Tensor]:
    """Write ``out_file``; returns the example inputs it was traced with."""
    wrapper = wrap(model)
    inputs = example_inputs(model, texts, shape)
    with torch.no_grad():
        outputs = wrapper(**inputs)
    kind = export_kind(model)
    names = output_names(model, len(outputs) // 3)
    dynamic = {'input_ids': {0: 'batch', 1: 'text_len'}, 'attention_mask': {0: 'batch', 1: 'text_len'}}
    if kind == 'mdetr':
        dynamic['image'] = {0: 'batch'} if fixed_image_size(model) else {0: 'batch', 2: 'height', 3: 'width'}
        dynamic.update(boxes={0: 'batch'}, scores={0: 'batch'})
    else:  # FIBER: batch and image size fixed; the text length stays dynamic in the class logits
        dynamic = {'input_ids': {1: 'text_len'}, 'attention_mask': {1: 'text_len'}}
        dynamic.update({n: {2: 'text_len'} for n in names if n.startswith('cls_logits')})
    with torch.no_grad():
        torch.onnx.export(wrapper, (inputs['image'], inputs['input_ids'], inputs['attention_mask']), out_file,
                          input_names=['image', 'input_ids', 'attention_mask'], output_names=names,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    return inputs


def run_pytorch(model: nn.Module, inputs: Dict[str, Tensor]) -> List[np.ndarray]:
    with torch.no_grad():
        return [o.numpy() for o in wrap(model)(**inputs)]


def run_onnxruntime(out_file: str, inputs: Dict[str, Tensor], session=None) -> List[np.ndarray]:
    import onnxruntime as ort
    session = session or ort.InferenceSession(out_file, providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {k: inputs[k].numpy() for k in names})


def verify(model: nn.Module, out_file: str, inputs_list: Sequence[Dict[str, Tensor]], atol: float = 1e-4,
           rtol: float = 1e-3) -> float:
    """Compare onnxruntime with PyTorch on each inputs dict; returns the largest absolute difference."""
    worst = 0.0
    for inputs in inputs_list:
        for ref, got in zip(run_pytorch(model, inputs), run_onnxruntime(out_file, inputs)):
            np.testing.assert_allclose(got, ref, atol=atol, rtol=rtol)
            worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def benchmark(model: nn.Module, out_file: str, inputs: Dict[str, Tensor], runs: int = 20,
              threads: Optional[int] = None) -> Dict[str, float]:
    """Median CPU latency (ms) of PyTorch (eager, no grad) and onnxruntime on the same inputs."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        torch.set_num_threads(threads)
    session = ort.InferenceSession(out_file, options, providers=['CPUExecutionProvider'])
    wrapper = wrap(model)

    def timed(fn) -> float:
        fn()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000 * float(np.median(times))

    with torch.no_grad():
        pt = timed(lambda: wrapper(**inputs))
    feeds = {i.name: inputs[i.name].numpy() for i in session.get_inputs()}
    return dict(pytorch_ms=pt, onnxruntime_ms=timed(lambda: session.run(None, feeds)))


def build_model(config: str, checkpoint: Optional[str], cfg_options: Optional[dict] = None) -> nn.Module:
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    from mmvlg.registry import MODELS
    from mmvlg.utils import register_all_modules
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'mmvlg'))
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model.eval()


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Export an MDETR* or FIBER grounding detector to ONNX')
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', default=None, help='weights (none: random, for a dry run)')
    parser.add_argument('--out', default='model.onnx', help='output .onnx file')
    parser.add_argument('--shape', type=int, nargs=2, default=[128, 128], metavar=('H', 'W'),
                        help='image size of the export example (fixed for token-query MDETR* and FIBER)')
    parser.add_argument('--text', action='append', default=None, help='example text (repeat for a batch)')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--verify', action='store_true', help='compare onnxruntime with PyTorch')
    parser.add_argument('--benchmark', type=int, default=0, metavar='N',
                        help='time N runs of PyTorch and onnxruntime on the export inputs')
    parser.add_argument('--threads', type=int, default=None, help='CPU threads for --benchmark')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    model = build_model(args.config, args.checkpoint, args.cfg_options)
    texts = args.text or list(DEFAULT_TEXTS[:1])
    shape = tuple(args.shape)
    inputs = export(model, args.out, shape, texts, args.opset)
    print(f'wrote {args.out} ({osp.getsize(args.out) / 2**20:.1f} MiB): {type(model).__name__}, inputs image '
          f'{tuple(inputs["image"].shape)}, input_ids {tuple(inputs["input_ids"].shape)}; '
          f'image size {"fixed" if fixed_image_size(model) else "dynamic"}')
    if args.verify:
        checks = [inputs]
        checks.append(other_inputs(model, shape))
        worst = verify(model, args.out, checks)
        print(f'onnxruntime matches PyTorch on {len(checks)} input sets (max abs difference {worst:.2e})')
    if args.benchmark:
        res = benchmark(model, args.out, inputs, args.benchmark, args.threads)
        print(f'CPU latency, median of {args.benchmark} runs, batch {inputs["image"].shape[0]}: '
              f'PyTorch {res["pytorch_ms"]:.1f} ms, onnxruntime {res["onnxruntime_ms"]:.1f} ms')
    return 0


if __name__ == '__main__':
    sys.exit(main())
