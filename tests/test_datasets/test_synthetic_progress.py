"""Every generated data set says what it generates and how far it is (issue 15, Tools item 5): a log line with
the root and the scene counts, progress lines (a progress bar on a terminal), and the time it took; nothing
when an identical copy is reused."""
import logging

import pytest
from mmengine.logging import MMLogger

from mmvlg.datasets.synthetic.captions import SynthRefCaptionsConfig, generate_synthref_captions
from mmvlg.datasets.synthetic.synthref import SynthRefConfig, generate_synthref
from mmvlg.datasets.synthetic.vqa import SynthRefVQAConfig, generate_synthref_vqa
from mmvlg.datasets.synthetic.writer import GenerationProgress


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines():
    logger = MMLogger.get_instance('test_synthetic_progress')  # the current instance print_log writes to
    handler = ListHandler()
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.mark.parametrize('generate,cfg,name', [
    (generate_synthref, SynthRefConfig(num_scenes=dict(train=14, val=2, testA=2, testB=2), image_size=32),
     'SynthRef'),
    (generate_synthref_captions, SynthRefCaptionsConfig(num_scenes=dict(train=14, val=6), image_size=32),
     'SynthRef captions'),
    (generate_synthref_vqa, SynthRefVQAConfig(num_scenes=dict(train=14, val=6), image_size=32), 'SynthRef VQA'),
])
def test_generation_logs_its_progress(tmp_path, log_lines, monkeypatch, generate, cfg, name):
    monkeypatch.setattr(GenerationProgress, 'min_scenes_to_log', 20)  # progress lines for small sets too
    root = str(tmp_path / 'data')
    generate(root, cfg)
    assert log_lines[0].startswith('generating ') and name in log_lines[0] and root in log_lines[0]
    assert 'train 14' in log_lines[0] and '20 scenes' in log_lines[0]
    progress = [line for line in log_lines[1:-1] if 'scenes (' in line]
    assert len(progress) == 9 and progress[0].startswith(f'{name}') and '2/20 scenes (10%)' in progress[0]
    assert '20 scenes generated in' in log_lines[-1]
    del log_lines[:]
    generate(root, cfg)  # reused: silent
    assert log_lines == []
