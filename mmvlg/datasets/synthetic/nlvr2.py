"""SynthRef NLVR2: an embedded NLVR2-style set (a statement about a pair of scenes, true or false) with no download.

Every pair is two SynthRef scenes (:mod:`~mmvlg.datasets.synthetic.scenes`, a seed stream of its own; the first is
the *left* image) and ``statements_per_pair`` statements of different templates comparing them:

==============  ===============================================================  =============================
template        statement                                                        true when
==============  ===============================================================  =============================
``count_more``  "the left image has more circles than the right image"           left count > right count
``count_fewer`` "the left image has fewer circles than the right image"          left count < right count
``count_same``  "both images have the same number of circles"                    counts equal
``count_total`` "there are exactly three circles in the two images"              the sum is the number
``shape_both``  "both images contain a circle"                                   a circle in each image
``color_both``  "both images contain a red object"                               a red object in each image
``exist_one``   "exactly one image contains a red circle"                        in one image, not the other
==============  ===============================================================  =============================

A text-blind model must not find the label in the statement: for each template, the label of the next statement
is the one the template has had fewer of so far (ties: a coin), and the statement is drawn uniformly among the
template's statements with that truth value for the pair (pairs without one get another template), so every
template is half true and half false (a majority-per-template baseline scores 50%).

Written once, atomically and deterministically, in X-VLM's NLVR2 layout read by
:class:`~mmvlg.datasets.NLVR2Dataset`::

    root/
      images/{split}/{scene_id:06d}.png      # scenes 2p (left) and 2p + 1 (right) form pair p
      annotations/nlvr2_{split}.json         # [{"images": [left, right], "sentence", "label": "True"/"False",
                                             #   "identifier": "{split}-{pair}-{k}", "template"}]
      annotations/scenes_{split}.json        # every object of every scene (scene id -> objects), for baselines
      vocab.txt                              # every word of every statement
      meta.json                              # the generator's arguments
"""
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from mmvlg.registry import DATASETS

from ..nlvr2 import NLVR2Dataset
from .scenes import COLORS, SHAPES, SceneConfig, SceneObject, render_scenes, scene_record, seed_stream
from .writer import dump_json, generate_once, write_generated_data, write_lines

__all__ = ['TEMPLATES', 'NLVR2_FORMAT_VERSION', 'SynthRefNLVR2Config', 'pair_statements', 'statement_vocabulary',
           'generate_nlvr2_split', 'generate_synthref_nlvr2', 'SynthRefNLVR2Dataset', 'majority_baseline',
           'NUMBER_WORDS']

TEMPLATES = ('count_more', 'count_fewer', 'count_same', 'count_total', 'shape_both', 'color_both', 'exist_one')
NUMBER_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven',
                'twelve', 'thirteen')
NLVR2_FORMAT_VERSION = 1
SEED_STREAM = 400  # see scenes.seed_stream


@dataclass
class SynthRefNLVR2Config:
    """Arguments of the SynthRef NLVR2 generator, stored in ``meta.json``.

    Args:
        num_pairs (dict): Number of scene pairs per split (each pair is two images).
        statements_per_pair (int): Statements per pair, each of another template.
        templates (tuple): Which of :data:`TEMPLATES` to use.
        image_size (int): Side of the square images in pixels.
        min_objects (int): Fewest objects in a scene.
        max_objects (int): Most objects in a scene.
        seed (int): Seed of the set.
    """
    num_pairs: Dict[str, int] = field(default_factory=lambda: dict(train=2000, val=250))
    statements_per_pair: int = 2
    templates: Tuple[str, ...] = TEMPLATES
    image_size: int = 64
    min_objects: int = 3
    max_objects: int = 5
    seed: int = 0
    version: int = NLVR2_FORMAT_VERSION


def _plural(n: int, shape: str) -> str:
    return f'{NUMBER_WORDS[n]} {shape}{"" if n == 1 else "s"}'


def pair_statements(left: Sequence[SceneObject], right: Sequence[SceneObject]) -> Dict[str, List[Tuple[str, bool]]]:
    """Every statement of every template about a pair of scenes, with its truth value."""
    def count(objs, **attrs):
        return sum(all(getattr(o, k) == v for k, v in attrs.items()) for o in objs)

    found: Dict[str, List[Tuple[str, bool]]] = {t: [] for t in TEMPLATES}
    for s in SHAPES:
        cl, cr = count(left, shape=s), count(right, shape=s)
        found['count_more'].append((f'the left image has more {s}s than the right image', cl > cr))
        found['count_fewer'].append((f'the left image has fewer {s}s than the right image', cl < cr))
        found['count_same'].append((f'both images have the same number of {s}s', cl == cr))
        found['shape_both'].append((f'both images contain a {s}', cl > 0 and cr > 0))
        total = cl + cr
        for n in sorted({max(total - 1, 0), total, total + 1}):
            verb = 'is' if n == 1 else 'are'
            found['count_total'].append((f'there {verb} exactly {_plural(n, s)} in the two images', n == total))
        for c in COLORS:
            el, er = count(left, shape=s, color=c) > 0, count(right, shape=s, color=c) > 0
            found['exist_one'].append((f'exactly one image contains a {c} {s}', el != er))
    for c in COLORS:
        found['color_both'].append((f'both images contain a {c} object',
                                    count(left, color=c) > 0 and count(right, color=c) > 0))
    return found


def statement_vocabulary() -> List[str]:
    """Every word of SynthRef NLVR2 statements."""
    words = {'the', 'left', 'right', 'image', 'images', 'has', 'more', 'fewer', 'than', 'both', 'have', 'same',
             'number', 'of', 'contain', 'contains', 'a', 'object', 'exactly', 'one', 'there', 'is', 'are', 'in', 'two'}
    words |= set(SHAPES) | {s + 's' for s in SHAPES} | set(COLORS) | set(NUMBER_WORDS)
    return sorted(words)


def generate_nlvr2_split(split: str, num_pairs: int, cfg: SynthRefNLVR2Config, root: str
                         ) -> Tuple[List[dict], Dict[str, list]]:
    """Render the ``2 * num_pairs`` scenes of ``split`` and return (the X-VLM NLVR2 entries, the scene records)."""
    scene_cfg = SceneConfig(image_size=cfg.image_size, min_objects=cfg.min_objects, max_objects=cfg.max_objects)
    counts = {t: [0, 0] for t in cfg.templates}  # template -> [false, true] so far
    entries, scenes, pending = [], {}, []
    for scene_id, file_name, objs, rng in render_scenes(root, split, 2 * num_pairs, scene_cfg,
                                                        seed_stream(cfg.seed, SEED_STREAM, split)):
        scenes[str(scene_id)] = scene_record(objs)
        pending.append((file_name, objs))
        if len(pending) < 2:
            continue
        (left_file, left), (right_file, right) = pending
        pending = []
        pair = scene_id // 2
        found = pair_statements(left, right)
        chosen = 0
        for i in rng.permutation(len(cfg.templates)):
            if chosen >= cfg.statements_per_pair:
                break
            template = cfg.templates[int(i)]
            n_false, n_true = counts[template]
            label = bool(rng.integers(2)) if n_false == n_true else n_true < n_false
            options = [s for s, truth in found[template] if truth == label]
            if not options:
                continue
            sentence = options[int(rng.integers(len(options)))]
            counts[template][int(label)] += 1
            entries.append(dict(images=[left_file, right_file], sentence=sentence, label=str(label),
                                identifier=f'{split}-{pair}-{chosen}', template=template))
            chosen += 1
    return entries, scenes


def generate_synthref_nlvr2(root: str, cfg: Optional[SynthRefNLVR2Config] = None, force: bool = False) -> str:
    """Write SynthRef NLVR2 under ``root`` unless an identical copy (same ``meta.json``) is there (a ``root``
    holding one generated with other arguments is an error unless ``force``).

    Returns:
        str: ``root``.
    """
    cfg = cfg or SynthRefNLVR2Config()
    cfg.templates = tuple(cfg.templates)
    if not cfg.templates or set(cfg.templates) - set(TEMPLATES) or cfg.statements_per_pair < 1:
        raise ValueError(f'SynthRef NLVR2: templates must be a non-empty subset of {TEMPLATES} and '
                         f'statements_per_pair >= 1, got {cfg.templates}, {cfg.statements_per_pair}')
    if 2 * cfg.max_objects + 1 >= len(NUMBER_WORDS):
        raise ValueError(f'SynthRef NLVR2: at most {(len(NUMBER_WORDS) - 2) // 2} objects per scene')

    def write(tmp: str) -> None:
        for split, n in sorted(cfg.num_pairs.items()):
            entries, scenes = generate_nlvr2_split(split, n, cfg, tmp)
            dump_json(entries, osp.join(tmp, 'annotations', f'nlvr2_{split}.json'))
            dump_json(scenes, osp.join(tmp, 'annotations', f'scenes_{split}.json'))
        write_lines(statement_vocabulary(), osp.join(tmp, 'vocab.txt'))

    meta = asdict(cfg)
    meta['num_scenes'] = {split: 2 * n for split, n in cfg.num_pairs.items()}  # (for the progress log)
    return write_generated_data(root, meta, write, 'a SynthRef NLVR2 set', '.synthref-nlvr2-', force)


def majority_baseline(train: Sequence[dict], test: Sequence[dict], key: str = 'template') -> float:
    """Accuracy (0-1) on ``test`` of the text-blind baseline that answers, for each value of ``key`` (``template``
    or ``sentence``), the label most frequent for it in ``train`` (ties and unseen values: ``'True'``)."""
    votes: Dict[str, List[int]] = {}
    for e in train:
        votes.setdefault(e[key], [0, 0])[e['label'] == 'True'] += 1
    correct = 0
    for e in test:
        n_false, n_true = votes.get(e[key], [0, 0])
        correct += ('True' if n_true >= n_false else 'False') == e['label']
    return correct / max(len(test), 1)


@DATASETS.register_module()
class SynthRefNLVR2Dataset(NLVR2Dataset):
    """SynthRef NLVR2 (see :mod:`mmvlg.datasets.synthetic.nlvr2`), generated on first use.

    Args:
        generate (dict, optional): Arguments of :class:`SynthRefNLVR2Config`; when given, the set is generated
            under ``data_root`` unless an identical copy is there (rank 0 generates, the others wait).
        **kwargs: :class:`~mmvlg.datasets.NLVR2Dataset` arguments (``ann_file='annotations/nlvr2_train.json'``,
            ``data_prefix=dict(img='images/')``, ``pipeline``, ...).
    """

    def __init__(self, *args, generate: Optional[dict] = None, **kwargs) -> None:
        if generate is not None:
            cfg = dict(generate)
            if 'templates' in cfg:
                cfg['templates'] = tuple(cfg['templates'])
            generate_once(lambda: generate_synthref_nlvr2(kwargs['data_root'], SynthRefNLVR2Config(**cfg)))
        super().__init__(*args, **kwargs)

