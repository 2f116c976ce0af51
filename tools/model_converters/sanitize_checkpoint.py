# Rewrite a *trusted* checkpoint so that it loads with torch.load(weights_only=True).
"""Convert a trusted checkpoint that mmvlg refuses (``UnsafeCheckpointError``) into a safe one.

mmvlg loads every checkpoint with ``torch.load(weights_only=True)``. Checkpoints written by a plain MMEngine
Runner, e.g. by MMDetection, load as they are (mmvlg allow-lists exactly the data their message hub holds),
but other code bases may pickle arbitrary objects (their own classes, ``argparse.Namespace``, ...), which are
refused. This tool unpickles such a file *with code execution enabled*
(only do this for files you trust), stores the message hub as plain data and numpy scalars as numbers
(:func:`mmvlg.utils.checkpoint.sanitize_checkpoint`), optionally keeps only the weights, checks that the
result loads with ``weights_only=True`` and writes it.

Example::

    python tools/model_converters/sanitize_checkpoint.py old.pth new.pth --trust-source
    python tools/model_converters/sanitize_checkpoint.py foreign.pth weights.pth --trust-source --weights-only
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

import torch

from mmvlg.utils.checkpoint import safe_load_checkpoint, sanitize_checkpoint


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Make a trusted checkpoint loadable with weights_only=True')
    parser.add_argument('src', help='the trusted checkpoint')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument('--trust-source', action='store_true',
                        help='required: confirms that SRC comes from a trusted source (it is unpickled with code '
                        'execution enabled)')
    parser.add_argument('--weights-only', action='store_true',
                        help='keep only the weights ({"state_dict": ...}), dropping optimizer, message hub, meta')
    return parser.parse_args(argv)


def convert(src: str, dst: str, weights_only: bool = False) -> dict:
    """Load ``src`` with ``weights_only=False``, sanitize it and save it to ``dst``.

    Args:
        src (str): The trusted checkpoint.
        dst (str): The output path.
        weights_only (bool): Keep only ``state_dict`` (the whole object when it is a bare state dict).
            Defaults to False.

    Returns:
        dict: The checkpoint as written.

    Raises:
        RuntimeError: The converted checkpoint still does not load with ``weights_only=True`` (it holds objects
            that are not plain data, e.g. custom classes in ``meta``; try ``weights_only``).
    """
    checkpoint = torch.load(src, map_location='cpu', weights_only=False)
    if weights_only:
        state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else checkpoint
        checkpoint = dict(state_dict=state_dict)
    checkpoint = sanitize_checkpoint(checkpoint)
    torch.save(checkpoint, dst)
    try:
        safe_load_checkpoint(dst)
    except Exception as err:
        os.remove(dst)
        raise RuntimeError(f'{dst!r} still cannot be loaded with weights_only=True ({err}); '
                           'try --weights-only') from err
    return checkpoint


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if not args.trust_source:
        raise SystemExit('refusing to unpickle with code execution: pass --trust-source if you trust '
                         f'{args.src!r}')
    if osp.abspath(args.src) == osp.abspath(args.dst):
        raise SystemExit('write the converted checkpoint to a new file')
    convert(args.src, args.dst, weights_only=args.weights_only)
    print(f'wrote {args.dst} (loads with torch.load(weights_only=True))')


if __name__ == '__main__':
    main()
