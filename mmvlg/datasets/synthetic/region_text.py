"""SynthRef region-text: an embedded corpus for X-VLM's multi-grained pre-training with no download.

The scenes come from the scene generator of the synthetic sets (:mod:`~mmvlg.datasets.synthetic.scenes`) on a seed
stream of their own. Each scene is written twice, from the same images:

* as region-text data in X-VLM's format (read by :class:`~mmvlg.datasets.RegionTextDataset`): one element per
  object, its shape as the caption and its size and colour as attributes (``"big red"``, ``"red"``: the sampler
  draws one, giving ``"big red circle"`` or ``"red circle"``), plus up to ``relations_per_scene`` elements whose
  caption is a SynthRef relation expression that singles out its object (``"the circle left of the big green
  diamond"``, the object's box); the scene captions of :mod:`~mmvlg.datasets.synthetic.captions` (every phrasing)
  are the image-level ``caption``;
* as image-text pairs (the same captions) in the COCO-captions format read by
  :class:`~mmvlg.datasets.CaptionDataset`.

Layout under ``root`` (written once, atomically and deterministically)::

    root/
      images/{split}/{scene_id:06d}.png
      annotations/regions_{split}.jsonl     # X-VLM region-text, one image a line
      annotations/captions_{split}.json     # COCO captions of the same scenes
      vocab.txt                             # every word of every text (flipped ones included), one a line
      meta.json                             # the generator's arguments
"""
import json
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

from mmvlg.registry import DATASETS

from ..caption import CaptionDataset
from ..region_text import RegionTextDataset
from .captions import PHRASINGS, caption_vocabulary, describe_scene
from .expressions import relation_expressions
from .scenes import SceneConfig, render_scenes, scene_record, seed_stream
from .writer import dump_json, generate_once, write_generated_data, write_lines

__all__ = ['REGION_TEXT_FORMAT_VERSION', 'SynthRefRegionTextConfig', 'scene_regions', 'generate_region_text_split',
           'generate_synthref_region_text', 'SynthRefRegionTextDataset', 'SynthRefImageTextDataset']

REGION_TEXT_FORMAT_VERSION = 1
SEED_STREAM = 300  # see scenes.seed_stream


@dataclass
class SynthRefRegionTextConfig:
    """Arguments of the SynthRef region-text generator, stored in ``meta.json``.

    Args:
        num_scenes (dict): Number of scenes (images) per split.
        relations_per_scene (int): Most relation-expression elements per scene (0: objects only).
        phrasings (tuple): Which scene-caption phrasings to write (see
            :data:`~mmvlg.datasets.synthetic.captions.PHRASINGS`).
        image_size (int): Side of the square images in pixels.
        min_objects (int): Fewest objects in a scene.
        max_objects (int): Most objects in a scene.
        seed (int): Seed of the corpus.
    """
    num_scenes: Dict[str, int] = field(default_factory=lambda: dict(train=3000, val=300))
    relations_per_scene: int = 2
    phrasings: Tuple[str, ...] = PHRASINGS
    image_size: int = 64
    min_objects: int = 3
    max_objects: int = 5
    seed: int = 0
    version: int = REGION_TEXT_FORMAT_VERSION


def _xywh(box) -> List[float]:
    x1, y1, x2, y2 = box
    return [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]


def scene_regions(objs, rng, image_size: int, relations_per_scene: int) -> List[dict]:
    """The X-VLM ``elems`` of a scene: every object (its shape as caption, ``"size colour"`` and ``"colour"`` as
    attributes), then up to ``relations_per_scene`` relation expressions (drawn with ``rng``), each with the box
    of the object it singles out (``bb`` x, y, w, h in pixels)."""
    elems = [dict(caption=o.shape, attributes=[f'{o.size} {o.color}', o.color], bb=_xywh(o.box)) for o in objs]
    relations = []
    for t, o in enumerate(objs):
        relations.extend((expr, t) for expr, _ in relation_expressions(objs, t, image_size * 0.03))
    if relations and relations_per_scene > 0:
        for i in rng.permutation(len(relations))[:relations_per_scene]:
            expr, t = relations[int(i)]
            elems.append(dict(caption=expr, bb=_xywh(objs[t].box)))
    return elems


def generate_region_text_split(split: str, num_scenes: int, cfg: SynthRefRegionTextConfig, root: str
                               ) -> Tuple[List[dict], dict]:
    """Render the scenes of ``split`` and return (the region-text entries, the COCO-captions dict)."""
    scene_cfg = SceneConfig(image_size=cfg.image_size, min_objects=cfg.min_objects, max_objects=cfg.max_objects)
    entries, images, annotations = [], [], []
    for scene_id, file_name, objs, rng in render_scenes(root, split, num_scenes, scene_cfg,
                                                        seed_stream(cfg.seed, SEED_STREAM, split)):
        captions = [describe_scene(objs, p) for p in cfg.phrasings]
        entries.append(dict(image=file_name, image_id=scene_id, height=cfg.image_size, width=cfg.image_size,
                            caption=captions,
                            elems=scene_regions(objs, rng, cfg.image_size, cfg.relations_per_scene)))
        images.append(dict(id=scene_id, file_name=file_name, height=cfg.image_size, width=cfg.image_size,
                           objects=scene_record(objs)))
        for phrasing, caption in zip(cfg.phrasings, captions):
            annotations.append(dict(id=len(annotations), image_id=scene_id, caption=caption, phrasing=phrasing))
    return entries, dict(info=dict(description=f'SynthRef region-text captions, {split}'), images=images,
                         annotations=annotations)


def generate_synthref_region_text(root: str, cfg: Optional[SynthRefRegionTextConfig] = None,
                                  force: bool = False) -> str:
    """Write the SynthRef region-text corpus under ``root`` unless an identical copy (same ``meta.json``) is there
    (a ``root`` holding one generated with other arguments is an error unless ``force``).

    Returns:
        str: ``root``.
    """
    cfg = cfg or SynthRefRegionTextConfig()
    cfg.phrasings = tuple(cfg.phrasings)
    if not cfg.phrasings or set(cfg.phrasings) - set(PHRASINGS):
        raise ValueError(f'SynthRef region-text: phrasings must be a non-empty subset of {PHRASINGS}, got '
                         f'{cfg.phrasings}')
    if cfg.relations_per_scene < 0:
        raise ValueError(f'SynthRef region-text: relations_per_scene must be >= 0, got {cfg.relations_per_scene}')

    def write(tmp: str) -> None:
        for split, n in sorted(cfg.num_scenes.items()):
            entries, captions = generate_region_text_split(split, n, cfg, tmp)
            write_lines([json.dumps(e) for e in entries], osp.join(tmp, 'annotations', f'regions_{split}.jsonl'))
            dump_json(captions, osp.join(tmp, 'annotations', f'captions_{split}.json'))
        write_lines(caption_vocabulary(), osp.join(tmp, 'vocab.txt'))

    return write_generated_data(root, asdict(cfg), write, 'a SynthRef region-text corpus', '.synthref-regions-',
                                force)


def _generate(kwargs: dict, generate: Optional[dict]) -> None:
    if generate is not None:
        cfg = dict(generate)
        if 'phrasings' in cfg:
            cfg['phrasings'] = tuple(cfg['phrasings'])
        generate_once(lambda: generate_synthref_region_text(kwargs['data_root'], SynthRefRegionTextConfig(**cfg)))


@DATASETS.register_module()
class SynthRefRegionTextDataset(RegionTextDataset):
    """The region-text half of the SynthRef region-text corpus (see :mod:`mmvlg.datasets.synthetic.region_text`),
    generated on first use.

    Args:
        generate (dict, optional): Arguments of :class:`SynthRefRegionTextConfig`; when given, the corpus is
            generated under ``data_root`` unless an identical copy is there (rank 0 generates, the others wait).
        **kwargs: :class:`~mmvlg.datasets.RegionTextDataset` arguments (``ann_file='annotations/
            regions_train.jsonl'``, ``data_prefix=dict(img='images/')``, ``pipeline``, ...).
    """

    def __init__(self, *args, generate: Optional[dict] = None, **kwargs) -> None:
        _generate(kwargs, generate)
        super().__init__(*args, **kwargs)


@DATASETS.register_module()
class SynthRefImageTextDataset(CaptionDataset):
    """The image-text half of the SynthRef region-text corpus (the scene captions of the same images, COCO
    captions ``annotations/captions_{split}.json``), generated on first use with the same ``generate`` arguments
    as :class:`SynthRefRegionTextDataset` (one corpus serves both).

    Args:
        generate (dict, optional): Arguments of :class:`SynthRefRegionTextConfig`.
        **kwargs: :class:`~mmvlg.datasets.CaptionDataset` arguments.
    """

    def __init__(self, *args, generate: Optional[dict] = None, **kwargs) -> None:
        _generate(kwargs, generate)
        super().__init__(*args, **kwargs)
