"""SynthRef VQA: an embedded visual question answering set, so that VQA fine-tuning runs with no download.

The scenes are drawn by the scene generator of the synthetic sets (:mod:`mmvlg.datasets.synthetic.scenes`: the same
shapes, colours, sizes, placement and rendering as SynthRef) from a seed stream of their own. Every scene gets up
to ``questions_per_scene`` questions of different types, each answerable from the image alone and unambiguous:

* ``count`` (answer type ``number``): ``"how many squares are there?"`` -> ``"2"`` (any shape, 0 included);
* ``exist`` (``yes/no``, balanced): ``"is there a red triangle?"``;
* ``color`` (``other``): ``"what color is the small circle?"``, about an object that its shape (and size)
  single out;
* ``relation_color`` (``other``): ``"what color is the circle left of the big green diamond?"``, SynthRef's
  relation expressions whose target is named by its shape only;
* ``shape`` (``other``): ``"what shape is the blue object?"``, about an object that its colour (and size)
  single out.

Written once, atomically and deterministically (the same arguments write identical files), in the VQA v2 format
read by :class:`~mmvlg.datasets.VQAv2Dataset` (10 identical annotator answers per question)::

    root/
      images/{split}/{scene_id:06d}.png
      annotations/questions_{split}.json     # {"data_subtype": split, "questions": [...]}
      annotations/answers_{split}.json       # {"annotations": [{"question_id", "answers": [10 x ...], ...}]}
      answer_list.txt                        # every possible answer (synthref_vqa_answers()), one a line
      vocab.txt                              # every word of every question, one a line
      meta.json                              # the generator's arguments, to detect a stale cache
"""
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmvlg.registry import DATASETS

from ..vqa import VQAv2Dataset
from .expressions import relation_expressions
from .scenes import COLORS, SHAPES, SceneConfig, SceneObject, render_scenes, seed_stream
from .synthref import vocabulary as synthref_vocabulary
from .writer import dump_json, generate_once, write_generated_data, write_lines

__all__ = ['QUESTION_TYPES', 'ANSWER_TYPES', 'VQA_FORMAT_VERSION', 'NUM_ANNOTATORS', 'SynthRefVQAConfig',
           'synthref_vqa_answers', 'question_vocabulary', 'scene_questions', 'generate_vqa_split',
           'generate_synthref_vqa', 'SynthRefVQADataset']

QUESTION_TYPES = ('count', 'exist', 'color', 'relation_color', 'shape')
ANSWER_TYPES = dict(count='number', exist='yes/no', color='other', relation_color='other', shape='other')
VQA_FORMAT_VERSION = 1
NUM_ANNOTATORS = 10
SEED_STREAM = 200  # see scenes.seed_stream


@dataclass
class SynthRefVQAConfig:
    """Arguments of the SynthRef VQA generator, stored in ``meta.json``.

    Args:
        num_scenes (dict): Number of scenes (images) per split.
        questions_per_scene (int): Most questions per scene (one per type, types in random order).
        question_types (tuple): Which of :data:`QUESTION_TYPES` to ask.
        image_size (int): Side of the square images in pixels.
        min_objects (int): Fewest objects in a scene.
        max_objects (int): Most objects in a scene.
        seed (int): Seed of the set (independent of SynthRef's referring-expression splits and captions).
    """
    num_scenes: Dict[str, int] = field(default_factory=lambda: dict(train=4000, val=300))
    questions_per_scene: int = 4
    question_types: Tuple[str, ...] = QUESTION_TYPES
    image_size: int = 64
    min_objects: int = 3
    max_objects: int = 5
    seed: int = 0
    version: int = VQA_FORMAT_VERSION


def synthref_vqa_answers() -> List[str]:
    """Every answer a SynthRef VQA question can have (the answer vocabulary of its VQA head)."""
    return ['yes', 'no'] + [str(n) for n in range(7)] + list(COLORS) + list(SHAPES)


def question_vocabulary() -> List[str]:
    """Every word (and punctuation token) of SynthRef VQA questions."""
    words = set(synthref_vocabulary()) | {s + 's' for s in SHAPES}
    words |= {'what', 'color', 'shape', 'is', 'the', 'object', 'how', 'many', 'are', 'there', 'a', '?'}
    return sorted(words)


def _unique(objs: Sequence[SceneObject], t: int, keys: Sequence[Tuple[str, ...]]) -> Optional[Tuple[str, ...]]:
    """The first attribute tuple among ``keys`` whose values single out ``objs[t]``."""
    for key in keys:
        value = tuple(getattr(objs[t], k) for k in key)
        if sum(tuple(getattr(o, k) for k in key) == value for o in objs) == 1:
            return key
    return None


def scene_questions(objs: Sequence[SceneObject], rng: np.random.Generator, image_size: int) -> Dict[str, List[tuple]]:
    """Candidate ``(question, answer)`` pairs of a scene per question type."""
    found: Dict[str, List[tuple]] = {k: [] for k in QUESTION_TYPES}
    for shape in SHAPES:
        n = sum(o.shape == shape for o in objs)
        found['count'].append((f'how many {shape}s are there?', str(n)))
    present = sorted({(o.color, o.shape) for o in objs})
    absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
    if rng.random() < 0.5 or not absent:
        c, s = present[int(rng.integers(len(present)))]
        found['exist'].append((f'is there a {c} {s}?', 'yes'))
    else:
        c, s = absent[int(rng.integers(len(absent)))]
        found['exist'].append((f'is there a {c} {s}?', 'no'))
    for t, o in enumerate(objs):
        key = _unique(objs, t, [('shape', ), ('size', 'shape')])
        if key is not None:
            desc = ' '.join(getattr(o, k) for k in key)
            found['color'].append((f'what color is the {desc}?', o.color))
        key = _unique(objs, t, [('color', ), ('size', 'color')])
        if key is not None:
            desc = ' '.join(getattr(o, k) for k in key)
            found['shape'].append((f'what shape is the {desc} object?', o.shape))
        for expr, target_np in relation_expressions(objs, t, image_size * 0.03):
            if target_np == f'the {o.shape}':  # the target's colour is not in the question
                found['relation_color'].append((f'what color is {expr}?', o.color))
    return found


def generate_vqa_split(split: str, num_scenes: int, cfg: SynthRefVQAConfig, root: str) -> Tuple[dict, dict]:
    """Render the scenes of ``split`` under ``root/images/split`` and return its VQA v2 ``(questions, answers)``
    dicts."""
    scene_cfg = SceneConfig(image_size=cfg.image_size, min_objects=cfg.min_objects, max_objects=cfg.max_objects)
    split_seed = seed_stream(cfg.seed, SEED_STREAM, split)
    questions, annotations = [], []
    for scene_id, _, objs, rng in render_scenes(root, split, num_scenes, scene_cfg, split_seed):
        found = scene_questions(objs, rng, cfg.image_size)
        types = [t for t in cfg.question_types if found[t]]
        chosen = [types[int(i)] for i in rng.permutation(len(types))][:cfg.questions_per_scene]
        for k, qtype in enumerate(chosen):
            question, answer = found[qtype][int(rng.integers(len(found[qtype])))]
            qid = scene_id * 100 + k
            questions.append(dict(image_id=scene_id, question=question, question_id=qid))
            annotations.append(dict(
                question_id=qid, image_id=scene_id, question_type=qtype, answer_type=ANSWER_TYPES[qtype],
                multiple_choice_answer=answer,
                answers=[dict(answer=answer, answer_confidence='yes', answer_id=j + 1)
                         for j in range(NUM_ANNOTATORS)]))
    info = dict(description=f'SynthRef VQA, {split}')
    return (dict(info=info, data_type='synthref', data_subtype=split, questions=questions),
            dict(info=info, data_type='synthref', data_subtype=split, annotations=annotations))


def generate_synthref_vqa(root: str, cfg: Optional[SynthRefVQAConfig] = None, force: bool = False) -> str:
    """Write SynthRef VQA under ``root`` unless an identical copy (same ``meta.json``) is there.

    Written to a temporary folder beside ``root`` and moved into place at the end, so an interrupted run never
    leaves a half-written set. A ``root`` holding a set generated with other arguments is an error unless
    ``force``.

    Returns:
        str: ``root``.
    """
    cfg = cfg or SynthRefVQAConfig()
    cfg.question_types = tuple(cfg.question_types)
    unknown = set(cfg.question_types) - set(QUESTION_TYPES)
    if unknown or not cfg.question_types or cfg.questions_per_scene < 1:
        raise ValueError(f'SynthRef VQA: question_types must be a non-empty subset of {QUESTION_TYPES} and '
                         f'questions_per_scene >= 1, got {cfg.question_types}, {cfg.questions_per_scene}')
    if cfg.max_objects > 6:
        raise ValueError('SynthRef VQA: at most 6 objects per scene (the counting answers are 0-6)')

    def write(tmp: str) -> None:
        for split, n in sorted(cfg.num_scenes.items()):
            questions, answers = generate_vqa_split(split, n, cfg, tmp)
            dump_json(questions, osp.join(tmp, 'annotations', f'questions_{split}.json'))
            dump_json(answers, osp.join(tmp, 'annotations', f'answers_{split}.json'))
        write_lines(synthref_vqa_answers(), osp.join(tmp, 'answer_list.txt'))
        write_lines(question_vocabulary(), osp.join(tmp, 'vocab.txt'))

    return write_generated_data(root, asdict(cfg), write, 'a SynthRef VQA set', '.synthref-vqa-', force)


@DATASETS.register_module()
class SynthRefVQADataset(VQAv2Dataset):
    """SynthRef VQA (see :mod:`mmvlg.datasets.synthetic.vqa`), generated on first use.

    Args:
        generate (dict, optional): Arguments of :class:`SynthRefVQAConfig`. When given, the set is generated under
            ``data_root`` unless an identical copy is there (in distributed runs rank 0 generates and the others
            wait). Defaults to None (the files must exist).
        **kwargs: :class:`~mmvlg.datasets.VQAv2Dataset` arguments, e.g. ``ann_file='annotations/
            questions_train.json'``, ``answer_file='annotations/answers_train.json'``, ``data_prefix=dict(
            img='images/')``; ``img_template`` defaults to ``'{data_subtype}/{image_id:06d}.png'`` and
            ``answer_list`` to :func:`synthref_vqa_answers`.
    """

    def __init__(self, *args, generate: Optional[dict] = None, **kwargs) -> None:
        if generate is not None:
            generate_once(lambda: generate_synthref_vqa(kwargs['data_root'], SynthRefVQAConfig(**generate)))
        kwargs.setdefault('img_template', '{data_subtype}/{image_id:06d}.png')
        kwargs.setdefault('answer_list', synthref_vqa_answers())
        super().__init__(*args, **kwargs)
