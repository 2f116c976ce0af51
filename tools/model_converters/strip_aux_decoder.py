# Strip multi-task SiRi's auxiliary decoder from a checkpoint for deployment.
"""Write a deployment checkpoint of a multi-task SiRi model (MDETR with ``aux_decoder``) without the
auxiliary decoder: SiRi (arXiv:2207.13325, appendix A) drops it after training, so that inference has the
parameters and the speed of the single-decoder model.

The output holds ``meta`` and ``state_dict`` only: the ``aux_decoder.*``, ``aux_head.*`` and
``aux_query_embedding*`` weights are removed, and so are the training state (optimizer, parameter
schedulers, message hub, and the raw weights that ``EMAHook`` keeps in ``ema_state_dict``: ``state_dict``
of a checkpoint saved with ``EMAHook`` already holds the averaged weights). The config stored in
``meta['cfg']`` loses ``model.aux_decoder`` too. The result loads into the single-decoder config with no
missing or unexpected keys. The input is read with ``torch.load(weights_only=True)``.

Usage:
    python tools/model_converters/strip_aux_decoder.py work_dirs/siri-mt_.../siri_round5_best.pth \
        mdetr-star_siri-mt_refcoco.pth
"""
import argparse
import os
import os.path as osp
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import torch

AUX_PREFIXES = ('aux_decoder.', 'aux_head.', 'aux_query_embedding')
TRAINING_STATE_KEYS = ('optimizer', 'param_schedulers', 'message_hub', 'ema_state_dict')


def is_aux_key(key: str) -> bool:
    """Whether a state-dict key belongs to the auxiliary decoder (``module.`` prefixes of raw DDP state
    dicts included)."""
    if key.startswith('module.'):
        key = key[len('module.'):]
    return key.startswith(AUX_PREFIXES)


def _strip_cfg_text(text: str) -> Optional[str]:
    """The config text without ``model.aux_decoder``/``model.predict_with``; None if it cannot be parsed."""
    from mmengine.config import Config
    try:
        cfg = Config.fromstring(text, file_format='.py')
        model = cfg.get('model', None)
        if model is not None:
            model.pop('aux_decoder', None)
            model.pop('predict_with', None)
        return cfg.pretty_text
    except Exception:  # an unparsable config is dropped rather than kept wrong
        return None


def strip_aux_decoder(checkpoint: dict) -> Tuple[dict, List[str]]:
    """Remove the auxiliary decoder and the training state from a checkpoint.

    Args:
        checkpoint (dict): A runner checkpoint (``meta``, ``state_dict``, ...) or a bare state dict.

    Returns:
        tuple[dict, list[str]]: The deployment checkpoint (``meta`` and ``state_dict``) and the removed
        state-dict keys.
    """
    state = checkpoint['state_dict'] if 'state_dict' in checkpoint else checkpoint
    removed = [k for k in state if is_aux_key(k)]
    stripped = OrderedDict((k, v) for k, v in state.items() if not is_aux_key(k))
    meta = dict(checkpoint.get('meta', {})) if 'state_dict' in checkpoint else {}
    if isinstance(meta.get('cfg'), str):
        cfg_text = _strip_cfg_text(meta['cfg'])
        if cfg_text is None:
            meta.pop('cfg')
        else:
            meta['cfg'] = cfg_text
    meta['stripped_aux_decoder'] = True
    return dict(meta=meta, state_dict=stripped), removed


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Strip the auxiliary decoder of multi-task SiRi from a checkpoint')
    parser.add_argument('input', help='checkpoint of a multi-task SiRi model')
    parser.add_argument('output', help='deployment checkpoint to write')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from mmvlg.utils import safe_load_checkpoint
    checkpoint = safe_load_checkpoint(args.input, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{args.input} does not hold a dict (a checkpoint or a state dict)')
    out, removed = strip_aux_decoder(checkpoint)
    if not removed:
        print(f'warning: {args.input} has no auxiliary-decoder weights; writing it without the training state')
    if osp.dirname(osp.abspath(args.output)):
        os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
    torch.save(out, args.output)
    kept = sum(v.numel() for v in out['state_dict'].values() if isinstance(v, torch.Tensor))
    print(f'removed {len(removed)} auxiliary tensors; wrote {len(out["state_dict"])} tensors ({kept / 1e6:.2f}M '
          f'values) to {args.output}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
