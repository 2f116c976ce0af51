"""SynthRef entailment: an embedded visual-entailment set (image, hypothesis, entailment / neutral /
contradiction) in SNLI-VE's format, with no download.

Every scene is drawn by the scene generator of the synthetic sets (:mod:`~mmvlg.datasets.synthetic.scenes`, a seed
stream of its own). With probability ``cover_prob`` a dark *cover* hides a band along one side of the image
(``cover_fraction`` of its width or height): objects that would touch it are not drawn, so what lies under it is
unknown. A hypothesis is about the objects of the scene:

==============  ===========================================  =================================================
template        hypothesis                                   label from v (visible matching objects), cover
==============  ===========================================  =================================================
``exist``       "there is a red circle"                      v >= 1: entailment; v = 0: neutral if covered,
                                                             else contradiction
``none``        "there is no red circle"                     v >= 1: contradiction; v = 0: neutral if covered,
                                                             else entailment
``count``       "there are exactly two red circles" (1-3)    v > n: contradiction; else neutral if covered,
                                                             else entailment if v = n, contradiction otherwise
``count_shape`` "there are exactly three circles" (1-4)      as ``count``
``at_least``    "there are at least two circles" (2-3)       v >= n: entailment; else neutral if covered,
                                                             else contradiction
==============  ===========================================  =================================================

*Neutral* is what SNLI-VE means by it: the image does not decide (the cover may or may not hide what the hypothesis
needs). So that the hypothesis alone does not give the label, every hypothesis can take the three labels, and the
generator balances them: for each template, the label of the next hypothesis is the one the template has had
fewest of so far (ties: a coin; a scene without a hypothesis of that label gets another template, so a scene may
have fewer than ``hypotheses_per_scene``), and the hypothesis is one of the scene's hypotheses of the template with
that label that has had it no more often than either other label (ties: a coin; none: another template). So every
template and every hypothesis text is about a third of each label.

What the image alone gives away: an uncovered image is never *neutral*, and a covered one allows only two labels per
template (*neutral* and one other), so the cover is a strong cue. Measured on the default set (4000 / 300 scenes,
``cover_prob=0.5``): the hypothesis-only baseline (``tools/analysis_tools/text_only_baseline.py``) scores 35.0%
(chance 33.3%; ``count`` 42.1%: its rare hypotheses, such as three objects of one colour and shape, are seldom
entailed), a policy that sees only whether the image has a cover 61.0%, one that sees the cover and the hypothesis
69.5%; a model above that counts the visible objects.

Written once, atomically and deterministically, in SNLI-VE's JSON lines read by :class:`~mmvlg.datasets.
SNLIVEDataset`::

    root/
      images/{split}/{scene_id:06d}.png      # the image (the "Flikr30kID" of its pairs)
      annotations/ve_{split}.jsonl           # {"Flikr30kID", "pairID": "{split}-{scene}-{k}", "sentence2",
                                             #  "gold_label", "annotator_labels", "hypothesis_type"} a line
      annotations/scenes_{split}.json        # scene id -> {"objects": the drawn objects, "cover": box or null}
      vocab.txt                              # every word of every hypothesis
      meta.json                              # the generator's arguments
"""
import os
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmvlg.registry import DATASETS

from ..snli_ve import ENTAILMENT_CLASSES, SNLIVEDataset
from .scenes import COLORS, SHAPES, SceneConfig, SceneObject, draw_scene, place_objects, scene_record, seed_stream
from .writer import dump_json, generate_once, scene_written, write_generated_data, write_lines

__all__ = ['TEMPLATES', 'ENTAILMENT_FORMAT_VERSION', 'COVER_COLOR', 'SynthRefEntailmentConfig', 'scene_hypotheses',
           'hypothesis_vocabulary', 'generate_entailment_split', 'generate_synthref_entailment',
           'SynthRefEntailmentDataset']

TEMPLATES = ('exist', 'none', 'count', 'count_shape', 'at_least')
ENTAILMENT_FORMAT_VERSION = 1
SEED_STREAM = 500  # see scenes.seed_stream
COVER_COLOR = (20, 20, 20)
NUMBER_WORDS = ('zero', 'one', 'two', 'three', 'four')
E, N, C = ENTAILMENT_CLASSES


@dataclass
class SynthRefEntailmentConfig:
    """Arguments of the SynthRef entailment generator, stored in ``meta.json``.

    Args:
        num_scenes (dict): Number of scenes (images) per split.
        hypotheses_per_scene (int): Hypotheses per scene, each of another template.
        templates (tuple): Which of :data:`TEMPLATES` to use.
        cover_prob (float): Probability that a scene has a cover.
        cover_fraction (tuple): Range of the cover's depth, as a fraction of the image side.
        image_size (int): Side of the square images in pixels.
        min_objects (int): Fewest objects placed in a scene (those touching the cover are then left out).
        max_objects (int): Most objects placed in a scene.
        seed (int): Seed of the set.
    """
    num_scenes: Dict[str, int] = field(default_factory=lambda: dict(train=4000, val=300))
    hypotheses_per_scene: int = 3
    templates: Tuple[str, ...] = TEMPLATES
    cover_prob: float = 0.5
    cover_fraction: Tuple[float, float] = (0.35, 0.5)
    image_size: int = 64
    min_objects: int = 3
    max_objects: int = 6
    seed: int = 0
    version: int = ENTAILMENT_FORMAT_VERSION


def _exactly(n: int, noun: str) -> str:
    return f'there {"is" if n == 1 else "are"} exactly {NUMBER_WORDS[n]} {noun}{"" if n == 1 else "s"}'


def scene_hypotheses(objs: Sequence[SceneObject], covered: bool) -> Dict[str, List[Tuple[str, str]]]:
    """Every hypothesis of every template about a scene, with its label (see the module doc).

    Args:
        objs (list[SceneObject]): The objects the image shows.
        covered (bool): Whether a cover hides part of the image.

    Returns:
        dict: template -> list of ``(hypothesis, label)``, ``label`` one of ``'entailment'``, ``'neutral'``,
        ``'contradiction'``.
    """
    def count(**attrs) -> int:
        return sum(all(getattr(o, k) == v for k, v in attrs.items()) for o in objs)

    def exactly(v: int, n: int) -> str:
        if v > n:
            return C
        return N if covered else (E if v == n else C)

    found: Dict[str, List[Tuple[str, str]]] = {t: [] for t in TEMPLATES}
    for s in SHAPES:
        for c in COLORS:
            v = count(shape=s, color=c)
            unknown = N if covered else None
            found['exist'].append((f'there is a {c} {s}', E if v else (unknown or C)))
            found['none'].append((f'there is no {c} {s}', C if v else (unknown or E)))
            for n in (1, 2, 3):
                found['count'].append((_exactly(n, f'{c} {s}'), exactly(v, n)))
        v = count(shape=s)
        for n in (1, 2, 3, 4):
            found['count_shape'].append((_exactly(n, s), exactly(v, n)))
        for n in (2, 3):
            found['at_least'].append((f'there are at least {NUMBER_WORDS[n]} {s}s',
                                      E if v >= n else (N if covered else C)))
    return found


def hypothesis_vocabulary() -> List[str]:
    """Every word of SynthRef entailment hypotheses."""
    words = {'there', 'is', 'are', 'a', 'no', 'exactly', 'at', 'least'} | set(NUMBER_WORDS[1:])
    words |= set(SHAPES) | {s + 's' for s in SHAPES} | set(COLORS)
    return sorted(words)


def _cover_box(rng: np.random.Generator, cfg: SynthRefEntailmentConfig) -> Optional[List[float]]:
    """The cover (x1, y1, x2, y2) in pixels, along one side of the image, or None."""
    if rng.random() >= cfg.cover_prob:
        return None
    s = float(cfg.image_size)
    depth = round(s * rng.uniform(*cfg.cover_fraction))
    side = int(rng.integers(4))  # left, right, top, bottom
    return [[0.0, 0.0, depth, s], [s - depth, 0.0, s, s], [0.0, 0.0, s, depth], [0.0, s - depth, s, s]][side]


def _touches(box: Sequence[float], cover: Sequence[float], margin: float = 1.0) -> bool:
    return not (box[2] + margin <= cover[0] or box[0] - margin >= cover[2] or box[3] + margin <= cover[1]
                or box[1] - margin >= cover[3])


def generate_entailment_split(split: str, num_scenes: int, cfg: SynthRefEntailmentConfig, root: str
                              ) -> Tuple[List[dict], Dict[str, dict]]:
    """Render the scenes of ``split`` under ``root/images/split`` and return (its SNLI-VE lines, the scene
    records)."""
    from PIL import Image, ImageDraw
    scene_cfg = SceneConfig(image_size=cfg.image_size, min_objects=cfg.min_objects, max_objects=cfg.max_objects)
    split_seed = seed_stream(cfg.seed, SEED_STREAM, split)
    os.makedirs(osp.join(root, 'images', split), exist_ok=True)
    by_template = {t: {label: 0 for label in ENTAILMENT_CLASSES} for t in cfg.templates}
    by_text: Dict[str, Dict[str, int]] = {}
    lines, scenes = [], {}
    for scene_id in range(num_scenes):
        rng = np.random.default_rng([*split_seed, scene_id])
        placed = place_objects(rng, scene_cfg)
        cover = _cover_box(rng, cfg)
        objs = [o for o in placed if cover is None or not _touches(o.box, cover)]
        img = Image.fromarray(draw_scene(objs, rng, cfg.image_size))
        if cover is not None:
            ImageDraw.Draw(img).rectangle([cover[0], cover[1], cover[2] - 1, cover[3] - 1], fill=COVER_COLOR)
        file_name = f'{split}/{scene_id:06d}.png'
        img.save(osp.join(root, 'images', file_name))
        scene_written()
        scenes[str(scene_id)] = dict(objects=scene_record(objs), cover=cover)
        found = scene_hypotheses(objs, cover is not None)
        chosen = 0
        for i in rng.permutation(len(cfg.templates)):
            if chosen >= cfg.hypotheses_per_scene:
                break
            template = cfg.templates[int(i)]
            options: Dict[str, List[str]] = {}
            for text, label in found[template]:
                options.setdefault(label, []).append(text)
            fewest = min(by_template[template].values())
            labels = [lb for lb in ENTAILMENT_CLASSES if by_template[template][lb] == fewest]
            label = labels[int(rng.integers(len(labels)))]
            if label not in options:  # the scene cannot give the label this template needs: another template
                continue

            def behind(text: str) -> int:  # how far this text's count of the label is ahead of its least label
                seen = by_text.get(text, {})
                return seen.get(label, 0) - min(seen.get(lb, 0) for lb in ENTAILMENT_CLASSES)

            lag = min(behind(t) for t in options[label])
            if lag > 0:  # every text of the label would get ahead on it: another template
                continue
            texts = [t for t in options[label] if behind(t) == lag]
            text = texts[int(rng.integers(len(texts)))]
            by_template[template][label] += 1
            by_text.setdefault(text, {})
            by_text[text][label] = by_text[text].get(label, 0) + 1
            lines.append({'Flikr30kID': file_name, 'pairID': f'{split}-{scene_id}-{chosen}', 'sentence2': text,
                          'gold_label': label, 'annotator_labels': [label], 'hypothesis_type': template})
            chosen += 1
    return lines, scenes


def generate_synthref_entailment(root: str, cfg: Optional[SynthRefEntailmentConfig] = None,
                                 force: bool = False) -> str:
    """Write SynthRef entailment under ``root`` unless an identical copy (same ``meta.json``) is there (a
    ``root`` holding one generated with other arguments is an error unless ``force``).

    Returns:
        str: ``root``.
    """
    import json
    cfg = cfg or SynthRefEntailmentConfig()
    cfg.templates, cfg.cover_fraction = tuple(cfg.templates), tuple(cfg.cover_fraction)
    if not cfg.templates or set(cfg.templates) - set(TEMPLATES) or not 1 <= cfg.hypotheses_per_scene:
        raise ValueError(f'SynthRef entailment: templates must be a non-empty subset of {TEMPLATES} and '
                         f'hypotheses_per_scene >= 1, got {cfg.templates}, {cfg.hypotheses_per_scene}')
    if not 0.0 <= cfg.cover_prob <= 1.0 or not 0.0 < cfg.cover_fraction[0] <= cfg.cover_fraction[1] < 1.0:
        raise ValueError(f'SynthRef entailment: cover_prob must be in [0, 1] and cover_fraction a range in (0, 1), '
                         f'got {cfg.cover_prob}, {cfg.cover_fraction}')

    def write(tmp: str) -> None:
        for split, n in sorted(cfg.num_scenes.items()):
            lines, scenes = generate_entailment_split(split, n, cfg, tmp)
            write_lines([json.dumps(line, sort_keys=True) for line in lines],
                        osp.join(tmp, 'annotations', f've_{split}.jsonl'))
            dump_json(scenes, osp.join(tmp, 'annotations', f'scenes_{split}.json'))
        write_lines(hypothesis_vocabulary(), osp.join(tmp, 'vocab.txt'))

    return write_generated_data(root, asdict(cfg), write, 'a SynthRef entailment set', '.synthref-ve-', force)


@DATASETS.register_module()
class SynthRefEntailmentDataset(SNLIVEDataset):
    """SynthRef entailment (see :mod:`mmvlg.datasets.synthetic.entailment`), generated on first use.

    Args:
        generate (dict, optional): Arguments of :class:`SynthRefEntailmentConfig`; when given, the set is generated
            under ``data_root`` unless an identical copy is there (rank 0 generates, the others wait). Defaults to
            None (the files must exist).
        **kwargs: :class:`~mmvlg.datasets.SNLIVEDataset` arguments (``ann_file='annotations/ve_train.jsonl'``,
            ``data_prefix=dict(img='images/')``, ``pipeline``, ...).
    """

    def __init__(self, *args, generate: Optional[dict] = None, **kwargs) -> None:
        if generate is not None:
            gen = dict(generate)
            for key in ('templates', 'cover_fraction'):
                if key in gen:
                    gen[key] = tuple(gen[key])
            generate_once(lambda: generate_synthref_entailment(kwargs['data_root'], SynthRefEntailmentConfig(**gen)))
        super().__init__(*args, **kwargs)
