"""SynthRef: a procedurally generated referring-expression data set (the embedded default of mmvlg).

Each scene is a small image with 3-6 flat shapes on a textured background. Every object has a *category*
(shape), a colour, a size and a position. A scene always contains at least two objects of the referred
object's category, so the category alone never identifies it: the expression must be read. Expressions
come in three kinds, each generated only when it names exactly one object of the scene:

* ``attribute``: ``"the small red circle"`` (colour and/or size and the category);
* ``extreme``: ``"the leftmost square"``, ``"the topmost blue triangle"`` (extreme position among the
  objects of the category, with a clear margin);
* ``relation``: ``"the circle left of the big green diamond"`` (position relative to an anchor object that
  is itself described uniquely).

The data is written once, in MDETR's referring-expression format (one COCO ``images`` entry per expression
with ``caption`` and ``tokens_positive``; one annotation with the referred box), so the same dataset class
and pipeline read SynthRef, RefCOCO, RefCOCO+ and RefCOCOg. Splits: ``train``, ``val`` (all kinds),
``testA`` (attribute and extreme expressions) and ``testB`` (relation expressions), echoing RefCOCO's split
of easy/hard subsets. Everything is deterministic given the seed: the same arguments write identical files.

Layout under ``root``::

    root/
      images/{split}/{scene_id:06d}.png
      annotations/finetune_synthref_{split}.json
      annotations/scenes_{split}.json   # every object of every scene (shape, colour, size, box), for baselines
      vocab.txt                     # every word of every caption, one a line (for word-level tokenizers)
      meta.json                     # the generator's arguments, to detect a stale cache

The scenes come from :mod:`~mmvlg.datasets.synthetic.scenes`, the expressions from
:mod:`~mmvlg.datasets.synthetic.expressions`, the files are written by :mod:`~mmvlg.datasets.synthetic.writer`.
"""
import os
import os.path as osp
import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from mmvlg.registry import DATASETS

from ..refexp import MDETRRefExpDataset
from .expressions import EXTREMES, RELATIONS, referring_expressions
from .scenes import COLORS, SHAPES, SIZES, place_objects, save_scene, scene_record
from .writer import dump_json, generate_once, scene_written, write_generated_data, write_lines

__all__ = ['SPLIT_KINDS', 'FORMAT_VERSION', 'SynthRefConfig', 'generate_split', 'generate_split_and_scenes',
           'vocabulary', 'caption_words', 'generate_synthref', 'SynthRefDataset']

SPLIT_KINDS = {
    'train': ('attribute', 'extreme', 'relation'),
    'val': ('attribute', 'extreme', 'relation'),
    'testA': ('attribute', 'extreme'),
    'testB': ('relation', ),
}
# 3: adds annotations/scenes_{split}.json (the finetune_*.json files and the images are those of version 2).
FORMAT_VERSION = 4


@dataclass
class SynthRefConfig:
    """Arguments of the generator; they are stored in ``meta.json`` next to the data.

    Args:
        num_scenes (dict): Number of scenes per split.
        expressions_per_scene (int): Expressions (with different referred objects where possible) per scene.
        image_size (int): Side of the square images in pixels.
        min_objects (int): Fewest objects in a scene.
        max_objects (int): Most objects in a scene.
        small_size (tuple): Range of the half side of small objects, as a fraction of the image side.
        big_size (tuple): Same for big objects.
        seed (int): Seed of the whole data set; each split and scene derive their own seeds from it.
    """
    num_scenes: Dict[str, int] = field(default_factory=lambda: dict(train=8000, val=500, testA=500, testB=500))
    expressions_per_scene: int = 2
    image_size: int = 128
    min_objects: int = 3
    max_objects: int = 5
    small_size: Tuple[float, float] = (0.07, 0.09)
    big_size: Tuple[float, float] = (0.12, 0.15)
    seed: int = 0
    version: int = FORMAT_VERSION


def generate_split(split: str, num_scenes: int, cfg: SynthRefConfig, root: str) -> Dict:
    """Render ``num_scenes`` scenes of ``split`` under ``root/images/split`` and return the MDETR-format
    annotation dict (one image entry per expression)."""
    return generate_split_and_scenes(split, num_scenes, cfg, root)[0]


def generate_split_and_scenes(split: str, num_scenes: int, cfg: SynthRefConfig, root: str
                              ) -> Tuple[Dict, Dict[str, list]]:
    """:func:`generate_split` that also returns the scene records: scene id (as a string, the JSON key)
    -> list of objects ``{shape, color, size, bbox}`` with ``bbox`` in x1, y1, x2, y2 pixels."""
    kinds = SPLIT_KINDS[split]
    split_seed = cfg.seed * 1000 + list(SPLIT_KINDS).index(split)
    img_dir = osp.join(root, 'images', split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    scenes: Dict[str, list] = {}
    scene_id = 0
    attempt = 0
    while scene_id < num_scenes:
        rng = np.random.default_rng([split_seed, attempt])
        attempt += 1
        objs = place_objects(rng, cfg)
        candidates = []
        for t in range(len(objs)):
            if sum(p.shape == objs[t].shape for p in objs) < 2:
                continue  # only objects that have a same-category distractor are referred to
            exprs = referring_expressions(objs, t, kinds, cfg.image_size)
            if exprs:
                candidates.append((t, exprs))
        if not candidates:
            continue
        order = rng.permutation(len(candidates))[:cfg.expressions_per_scene]
        file_name = f'{split}/{scene_id:06d}.png'
        save_scene(objs, rng, cfg.image_size, osp.join(root, 'images', file_name))
        scenes[str(scene_id)] = scene_record(objs)
        for ci in order:
            t, exprs = candidates[int(ci)]
            kind = sorted(exprs)[int(rng.integers(len(exprs)))]
            caption, target_np = exprs[kind][int(rng.integers(len(exprs[kind])))]
            x0, y0, x1, y1 = objs[t].box
            expr_id = len(images)
            images.append(dict(
                id=expr_id, file_name=file_name, height=cfg.image_size, width=cfg.image_size,
                caption=caption, dataset_name='synthref', original_id=scene_id, expression_kind=kind,
                tokens_positive_eval=[[[0, len(target_np)]]]))
            annotations.append(dict(
                id=expr_id, image_id=expr_id, bbox=[round(x0, 2), round(y0, 2), round(x1 - x0, 2),
                                                    round(y1 - y0, 2)],
                area=round((x1 - x0) * (y1 - y0), 2), iscrowd=0, category_id=1 + SHAPES.index(objs[t].shape),
                tokens_positive=[[0, len(target_np)]], original_id=scene_id))
        scene_id += 1
        scene_written()  # the progress of the data set being generated
    categories = [dict(id=i + 1, name=s) for i, s in enumerate(SHAPES)]
    return dict(images=images, annotations=annotations, categories=categories), scenes


def vocabulary() -> List[str]:
    """Every word that SynthRef captions can contain (flipped captions included)."""
    words = {'the', 'of'} | set(SHAPES) | set(COLORS) | set(SIZES) | set(EXTREMES)
    for rel in RELATIONS:
        words.update(rel.split())
    return sorted(words)


_WORD = re.compile(r'[a-z]+')


def caption_words(caption: str) -> List[str]:
    """The lower-case words of a caption (what :func:`vocabulary` lists)."""
    return _WORD.findall(caption.lower())


def generate_synthref(root: str, cfg: Optional[SynthRefConfig] = None, force: bool = False) -> str:
    """Write SynthRef under ``root`` unless an identical copy (same ``meta.json``) is already there.

    The data are written to a temporary folder beside ``root`` and moved into place at the end, so an
    interrupted run never leaves a half-written data set behind
    (:func:`~mmvlg.datasets.synthetic.writer.write_generated_data`).

    Returns:
        str: ``root``.
    """
    cfg = cfg or SynthRefConfig()

    def write(tmp: str) -> None:
        for split, n in cfg.num_scenes.items():
            ann, scenes = generate_split_and_scenes(split, n, cfg, tmp)
            dump_json(ann, osp.join(tmp, 'annotations', f'finetune_synthref_{split}.json'))
            dump_json(scenes, osp.join(tmp, 'annotations', f'scenes_{split}.json'))
        write_lines(vocabulary(), osp.join(tmp, 'vocab.txt'))

    return write_generated_data(root, asdict(cfg), write, 'a SynthRef', '.synthref-', force)


@DATASETS.register_module()
class SynthRefDataset(MDETRRefExpDataset):
    """SynthRef (see :mod:`mmvlg.datasets.synthetic.synthref`), generated on first use.

    Args:
        generate (dict, optional): Arguments of :class:`SynthRefConfig`. When given, the data set is generated
            under ``data_root`` unless an identical copy is already there (in distributed runs, rank 0 generates
            and the other ranks wait). Defaults to None (the files must exist).
        fraction (float): Keep only this fraction of the expressions (a deterministic subset of whole
            scenes), for small-data studies. Defaults to 1.
        **kwargs: Passed to :class:`~mmvlg.datasets.MDETRRefExpDataset`.
    """

    def __init__(self, *args, generate: Optional[dict] = None, fraction: float = 1.0, **kwargs) -> None:
        if generate is not None:
            generate_once(lambda: generate_synthref(kwargs['data_root'], SynthRefConfig(**generate)))
        if not 0 < fraction <= 1:
            raise ValueError(f'SynthRefDataset: fraction must be in (0, 1], got {fraction}')
        self.fraction = fraction
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        if self.fraction < 1:
            scenes = sorted({d['original_id'] for d in data_list})
            keep = set(scenes[:max(1, round(len(scenes) * self.fraction))])
            data_list = [d for d in data_list if d['original_id'] in keep]
        return data_list
