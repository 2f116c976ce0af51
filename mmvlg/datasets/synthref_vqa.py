"""SynthRef VQA: kept at this path for compatibility; it lives in :mod:`mmvlg.datasets.synthetic.vqa`."""
from .synthetic.vqa import (
    ANSWER_TYPES,
    NUM_ANNOTATORS,
    QUESTION_TYPES,
    VQA_FORMAT_VERSION,
    SynthRefVQAConfig,
    SynthRefVQADataset,
    generate_synthref_vqa,
    generate_vqa_split,
    question_vocabulary,
    scene_questions,
    synthref_vqa_answers,
)

_generate_split = generate_vqa_split

__all__ = ['QUESTION_TYPES', 'ANSWER_TYPES', 'VQA_FORMAT_VERSION', 'NUM_ANNOTATORS', 'SynthRefVQAConfig',
           'synthref_vqa_answers', 'question_vocabulary', 'scene_questions', 'generate_synthref_vqa',
           'SynthRefVQADataset']
