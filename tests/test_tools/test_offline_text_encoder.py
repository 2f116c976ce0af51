"""A pretrained text encoder that cannot be read fails at once, naming the config key to set (issue 15, Tools
item 7): an offline machine (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, or no network) with a hub name that is not
cached, or a local path that does not exist; also through the converters' ``build_target_model``."""
import os.path as osp
import time

import pytest

from mmvlg.models.language_models import hf_text_encoder as hf
from mmvlg.models.language_models.hf_text_encoder import HFTextEncoder, pretrained_source
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils.converters import build_target_model

UNCACHED = 'mmvlg-tests/not-a-cached-model'
KEY = 'model.language_model.name_or_path'


def _no_probe():
    raise AssertionError('offline: the hub must not be probed')


@pytest.mark.parametrize('env', ['HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE'])
def test_offline_hub_name_not_cached_fails_at_once(monkeypatch, env):
    monkeypatch.setenv(env, '1')
    monkeypatch.setattr(hf, 'hub_reachable', _no_probe)
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match=rf'{UNCACHED}.*offline.*{KEY}=/models/not-a-cached-model') as e:
        HFTextEncoder(name_or_path=UNCACHED)
    assert time.monotonic() - start < 2
    assert 'model.backbone.language_model.name_or_path' in str(e.value)  # FIBER's key too


def test_no_network_fails_at_once(monkeypatch):
    for env in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE'):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr(hf, 'hub_reachable', lambda timeout=3.0: False)
    with pytest.raises(FileNotFoundError, match=rf'cannot be reached.*{KEY}='):
        HFTextEncoder(name_or_path=UNCACHED)


def test_missing_local_folder_fails_at_once(monkeypatch, tmp_path):
    monkeypatch.setattr(hf, 'hub_reachable', _no_probe)
    for missing in (str(tmp_path / 'roberta-base'), './pretrained/roberta-base', '~/no/such/model'):
        with pytest.raises(FileNotFoundError, match=rf'is not a folder.*{KEY}=/path/to/model'):
            HFTextEncoder(name_or_path=missing)


def test_cached_name_is_read_from_the_cache_when_offline(monkeypatch, tmp_path):
    monkeypatch.setattr(hf, '_in_hub_cache', lambda name: True)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    assert pretrained_source('roberta-base') == ('roberta-base', dict(local_files_only=True))
    monkeypatch.delenv('HF_HUB_OFFLINE')
    monkeypatch.setattr(hf, 'hub_reachable', lambda timeout=3.0: False)
    assert pretrained_source('roberta-base') == ('roberta-base', dict(local_files_only=True))
    monkeypatch.setattr(hf, 'hub_reachable', lambda timeout=3.0: True)
    assert pretrained_source('roberta-base') == ('roberta-base', {})
    assert pretrained_source(str(tmp_path)) == (str(tmp_path), dict(local_files_only=True))


def test_converter_target_model_on_an_offline_machine(monkeypatch):
    """tools/model_converters/mdetr_to_mmvlg.py builds its target through build_target_model."""
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(hf, '_in_hub_cache', lambda name: False)  # whatever this machine's cache holds
    config = osp.join(REPO_ROOT, 'configs', 'mdetr', 'mdetr_r101_roberta-base_2xb4-5e_refcoco.py')
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match=rf"'roberta-base'.*offline.*{KEY}=/models/roberta-base"):
        build_target_model(config)
    assert time.monotonic() - start < 10
