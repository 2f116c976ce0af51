"""SynthRef captions: an embedded image-caption corpus for coarse-grained pre-training with no download.

The scenes are drawn by the scene generator of the synthetic sets (:mod:`mmvlg.datasets.synthetic.scenes`: the
same shapes, colours, sizes, placement and rendering as SynthRef) from a seed stream of their own, so they are
not the scenes of the referring-expression splits. Each scene gets image-level descriptions of *every* object,
in up to three phrasings:

* ``list``: the objects in drawing order, ``"a big red circle, a small blue square and a small green circle"``;
* ``left-to-right``: the same sorted by position, ``"from left to right: a small blue square, a big ..."``;
* ``count``: how many of each shape, ``"two circles and a square"``.

The corpus is written once in the COCO-captions format read by :class:`~mmvlg.datasets.CaptionDataset`,
atomically (into a temporary folder moved into place at the end) and deterministically (the same arguments
write identical files). Layout under ``root``::

    root/
      images/{split}/{scene_id:06d}.png
      annotations/captions_{split}.json     # COCO captions: images + one annotation per caption
      vocab.txt                             # every word of every caption, one a line
      meta.json                             # the generator's arguments, to detect a stale cache
"""
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from mmvlg.registry import DATASETS

from ..caption import CaptionDataset
from .scenes import SHAPES, SceneConfig, SceneObject, render_scenes, scene_record, seed_stream
from .synthref import vocabulary as synthref_vocabulary
from .writer import dump_json, generate_once, write_generated_data, write_lines

__all__ = ['PHRASINGS', 'NUMBERS', 'CAPTIONS_FORMAT_VERSION', 'SynthRefCaptionsConfig', 'describe_scene',
           'caption_vocabulary', 'generate_caption_split', 'generate_synthref_captions', 'SynthRefCaptionDataset']

PHRASINGS = ('list', 'left-to-right', 'count')
NUMBERS = ('a', 'two', 'three', 'four', 'five', 'six')
CAPTIONS_FORMAT_VERSION = 1
SEED_STREAM = 100  # see scenes.seed_stream


@dataclass
class SynthRefCaptionsConfig:
    """Arguments of the caption-corpus generator, stored in ``meta.json``.

    Args:
        num_scenes (dict): Number of scenes (images) per split.
        phrasings (tuple): Which phrasings to write per scene, a subset of ``('list', 'left-to-right',
            'count')``; one caption per phrasing.
        image_size (int): Side of the square images in pixels.
        min_objects (int): Fewest objects in a scene.
        max_objects (int): Most objects in a scene.
        seed (int): Seed of the corpus (independent of SynthRef's referring-expression splits).
    """
    num_scenes: Dict[str, int] = field(default_factory=lambda: dict(train=8000, val=500))
    phrasings: Tuple[str, ...] = PHRASINGS
    image_size: int = 128
    min_objects: int = 3
    max_objects: int = 5
    seed: int = 0
    version: int = CAPTIONS_FORMAT_VERSION

    def scene_config(self) -> SceneConfig:
        """The scene generator's arguments (SynthRef's object sizes)."""
        return SceneConfig(image_size=self.image_size, min_objects=self.min_objects, max_objects=self.max_objects)


def _object_phrase(o: SceneObject) -> str:
    return f'a {o.size} {o.color} {o.shape}'


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]


def describe_scene(objs: Sequence[SceneObject], phrasing: str) -> str:
    """An image-level description of every object of a scene in one of :data:`PHRASINGS`."""
    if phrasing == 'list':
        return _join([_object_phrase(o) for o in objs])
    if phrasing == 'left-to-right':
        return 'from left to right: ' + _join([_object_phrase(o) for o in sorted(objs, key=lambda o: o.cx)])
    if phrasing == 'count':
        counts = [(s, sum(o.shape == s for o in objs)) for s in SHAPES]
        return _join([f'{NUMBERS[n - 1]} {s}{"s" if n > 1 else ""}' for s, n in counts if n])
    raise ValueError(f'unknown phrasing {phrasing!r}; expected one of {PHRASINGS}')


def caption_vocabulary() -> List[str]:
    """Every word SynthRef captions can contain (a superset of SynthRef's referring-expression words)."""
    words = set(synthref_vocabulary()) | set(NUMBERS) | {s + 's' for s in SHAPES}
    words |= {'and', 'from', 'to', 'left', 'right', ',', ':'}
    return sorted(words)


def generate_caption_split(split: str, num_scenes: int, cfg: SynthRefCaptionsConfig, root: str) -> Dict:
    """Render the scenes of ``split`` under ``root/images/split`` and return its COCO-captions dict (``images``
    with every object of the scene, one ``annotations`` entry per phrasing)."""
    images, annotations = [], []
    # a seed stream of its own (SynthRef's splits seed with one integer), stable whatever the other splits
    split_seed = seed_stream(cfg.seed, SEED_STREAM, split)
    for scene_id, file_name, objs, _ in render_scenes(root, split, num_scenes, cfg.scene_config(), split_seed):
        images.append(dict(id=scene_id, file_name=file_name, height=cfg.image_size, width=cfg.image_size,
                           objects=scene_record(objs)))
        for phrasing in cfg.phrasings:
            annotations.append(dict(id=len(annotations), image_id=scene_id, caption=describe_scene(objs, phrasing),
                                    phrasing=phrasing))
    return dict(info=dict(description=f'SynthRef captions, {split}'), images=images, annotations=annotations)


def generate_synthref_captions(root: str, cfg: Optional[SynthRefCaptionsConfig] = None,
                               force: bool = False) -> str:
    """Write the SynthRef caption corpus under ``root`` unless an identical copy (same ``meta.json``) is there.

    Written to a temporary folder beside ``root`` and moved into place at the end, so an interrupted run never
    leaves a half-written corpus. A ``root`` holding a corpus generated with other arguments is an error unless
    ``force``.

    Returns:
        str: ``root``.
    """
    cfg = cfg or SynthRefCaptionsConfig()
    unknown = set(cfg.phrasings) - set(PHRASINGS)
    if unknown or not cfg.phrasings:
        raise ValueError(f'SynthRef captions: phrasings must be a non-empty subset of {PHRASINGS}, got '
                         f'{cfg.phrasings}')

    def write(tmp: str) -> None:
        for split, n in sorted(cfg.num_scenes.items()):
            dump_json(generate_caption_split(split, n, cfg, tmp),
                      osp.join(tmp, 'annotations', f'captions_{split}.json'))
        write_lines(caption_vocabulary(), osp.join(tmp, 'vocab.txt'))

    return write_generated_data(root, asdict(cfg), write, 'SynthRef captions', '.synthref-captions-', force)


@DATASETS.register_module()
class SynthRefCaptionDataset(CaptionDataset):
    """The SynthRef caption corpus (see :mod:`mmvlg.datasets.synthetic.captions`), generated on first use.

    Args:
        generate (dict, optional): Arguments of :class:`SynthRefCaptionsConfig`. When given, the corpus is
            generated under ``data_root`` unless an identical copy is there (in distributed runs rank 0
            generates and the others wait). Defaults to None (the files must exist).
        **kwargs: Passed to :class:`~mmvlg.datasets.CaptionDataset` (``ann_file`` e.g.
            ``'annotations/captions_train.json'``, ``data_prefix=dict(img='images/')``, ``pipeline``, ...).
    """

    def __init__(self, *args, generate: Optional[dict] = None, **kwargs) -> None:
        if generate is not None:
            cfg = dict(generate)
            if 'phrasings' in cfg:
                cfg['phrasings'] = tuple(cfg['phrasings'])
            generate_once(lambda: generate_synthref_captions(kwargs['data_root'], SynthRefCaptionsConfig(**cfg)))
        super().__init__(*args, **kwargs)
