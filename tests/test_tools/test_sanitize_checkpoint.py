"""Tests of tools/model_converters/sanitize_checkpoint.py."""
import importlib.util
import os.path as osp
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils.checkpoint import safe_load_checkpoint


def load_tool():
    path = osp.join(REPO_ROOT, 'tools', 'model_converters', 'sanitize_checkpoint.py')
    spec = importlib.util.spec_from_file_location('_mmvlg_sanitize_checkpoint', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Opaque:
    """A custom class in a checkpoint: not plain data."""


def legacy_checkpoint(path: str, **extra) -> dict:
    """A checkpoint as a plain MMEngine Runner writes it (HistoryBuffer pickled with its functions)."""
    buffer = HistoryBuffer()
    buffer.update(3.0)
    checkpoint = dict(state_dict=OrderedDict(w=torch.arange(4.0)), meta=dict(epoch=2, best=np.float64(0.5)),
                      message_hub=dict(log_scalars={'train/loss': buffer}, runtime_info=dict(), resumed_keys=dict()),
                      **extra)
    torch.save(checkpoint, path)
    return checkpoint


def test_converts_legacy_mmengine_checkpoint(tmp_path):
    src, dst = str(tmp_path / 'legacy.pth'), str(tmp_path / 'safe.pth')
    legacy_checkpoint(src, extra_state=[1, 2])
    tool = load_tool()
    with pytest.raises(SystemExit, match='--trust-source'):
        tool.main([src, dst])
    assert not osp.exists(dst)
    tool.main([src, dst, '--trust-source'])
    converted = safe_load_checkpoint(dst)
    assert torch.equal(converted['state_dict']['w'], torch.arange(4.0))
    assert converted['meta'] == dict(epoch=2, best=0.5)
    buffer = converted['message_hub']['log_scalars']['train/loss']
    assert type(buffer) is HistoryBuffer and buffer.current() == 3.0


def test_weights_only_drops_opaque_objects(tmp_path):
    src, dst = str(tmp_path / 'foreign.pth'), str(tmp_path / 'weights.pth')
    legacy_checkpoint(src, extra_state=Opaque())
    tool = load_tool()
    with pytest.raises(RuntimeError, match='--weights-only'):
        tool.convert(src, dst)
    assert not osp.exists(dst)  # no unsafe file is left behind
    tool.main([src, dst, '--trust-source', '--weights-only'])
    converted = safe_load_checkpoint(dst)
    assert list(converted) == ['state_dict'] and torch.equal(converted['state_dict']['w'], torch.arange(4.0))
