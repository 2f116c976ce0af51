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

The stored config is never executed: it is parsed as literal data (:func:`mmvlg.utils.safe_config.
config_from_text`), and a checkpoint whose ``meta['cfg']`` holds anything else (imports, calls, names, ...) is
refused (exit status 1, nothing written). Give the training config with ``--config`` to store that one
(without ``model.aux_decoder``) instead of the checkpoint's.

Usage:
    python tools/model_converters/strip_aux_decoder.py work_dirs/siri-mt_.../siri_round5_best.pth \
        mdetr-star_siri-mt_refcoco.pth [--config configs/siri/siri-mt_....py]
"""
import argparse
import copy
import os
import os.path as osp
import sys
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


def _strip_cfg(cfg) -> str:
    """The config text without ``model.aux_decoder``/``model.predict_with``."""
    model = cfg.get('model', None)
    if model is not None:
        model.pop('aux_decoder', None)
        model.pop('predict_with', None)
    return cfg.pretty_text


def strip_aux_decoder(checkpoint: dict, config=None, source: str = "stored in the checkpoint's meta['cfg']"
                      ) -> Tuple[dict, List[str]]:
    """Remove the auxiliary decoder and the training state from a checkpoint.

    Args:
        checkpoint (dict): A runner checkpoint (``meta``, ``state_dict``, ...) or a bare state dict.
        config (Config, optional): The config to store in ``meta['cfg']`` (without ``model.aux_decoder``).
            Defaults to the checkpoint's ``meta['cfg']``, read as literal data only.
        source (str): What the checkpoint is, for error messages.

    Returns:
        tuple[dict, list[str]]: The deployment checkpoint (``meta`` and ``state_dict``) and the removed
        state-dict keys.

    Raises:
        UnsafeConfigError: ``config`` is None and the stored ``meta['cfg']`` is not literal data.
    """
    from mmvlg.utils.safe_config import config_from_text
    state = checkpoint['state_dict'] if 'state_dict' in checkpoint else checkpoint
    removed = [k for k in state if is_aux_key(k)]
    stripped = OrderedDict((k, v) for k, v in state.items() if not is_aux_key(k))
    meta = dict(checkpoint.get('meta', {})) if 'state_dict' in checkpoint else {}
    if config is not None:
        meta['cfg'] = _strip_cfg(copy.deepcopy(config))
    elif isinstance(meta.get('cfg'), str):
        meta['cfg'] = _strip_cfg(config_from_text(meta['cfg'], source=source))
    meta['stripped_aux_decoder'] = True
    return dict(meta=meta, state_dict=stripped), removed


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Strip the auxiliary decoder of multi-task SiRi from a checkpoint')
    parser.add_argument('input', help='checkpoint of a multi-task SiRi model')
    parser.add_argument('output', help='deployment checkpoint to write')
    parser.add_argument('--config', help="config file to store in meta['cfg'] (without model.aux_decoder) instead "
                        "of the checkpoint's own (which is read as literal data only, never executed)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from mmvlg.utils import safe_load_checkpoint
    from mmvlg.utils.safe_config import UnsafeConfigError
    config = None
    if args.config is not None:
        from mmengine.config import Config
        config = Config.fromfile(args.config)
    checkpoint = safe_load_checkpoint(args.input, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{args.input} does not hold a dict (a checkpoint or a state dict)')
    try:
        out, removed = strip_aux_decoder(checkpoint, config,
                                         source=f"of checkpoint {args.input!r} (meta['cfg'])")
    except UnsafeConfigError as err:
        print(f'error: {err} (strip_aux_decoder.py --config CONFIG)', file=sys.stderr)
        return 1
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
