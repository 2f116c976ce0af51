"""The scene generator of the synthetic data sets: flat shapes on a textured background.

A scene is a list of :class:`SceneObject` (category = shape, colour, size, centre and half side) placed without
overlap by :func:`place_objects` and rendered by :func:`draw_scene`. Every synthetic set (SynthRef's referring
expressions, its captions, its VQA questions, and new ones) draws its scenes with these two functions, each from a
seed stream of its own (:func:`seed_stream`), and describes them with the grammar of
:mod:`~mmvlg.datasets.synthetic.expressions`. Both functions consume the random generator in a fixed order, so
the same seed gives the same scene and the same pixels.

A short generator of a new set, for ``num_scenes`` scenes of ``split``::

    for scene_id, file_name, objs, rng in render_scenes(root, split, num_scenes, cfg, seed_stream(cfg.seed, 300,
                                                                                                   split)):
        ...  # describe objs (list of SceneObject, boxes in pixels); rng continues the scene's random stream
"""
import os
import os.path as osp
import zlib
from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import numpy as np

from .writer import scene_written

__all__ = ['SHAPES', 'COLORS', 'SIZES', 'SceneConfig', 'SceneObject', 'place_objects', 'draw_scene',
           'save_scene', 'scene_record', 'seed_stream', 'render_scenes']

SHAPES = ('circle', 'square', 'triangle', 'diamond')
COLORS = {
    'red': (220, 40, 40),
    'green': (40, 180, 60),
    'blue': (50, 80, 230),
    'yellow': (235, 215, 40),
    'purple': (150, 60, 200),
    'white': (240, 240, 240),
}
SIZES = ('small', 'big')


@dataclass
class SceneConfig:
    """What :func:`place_objects` reads (the generators' configs, e.g. ``SynthRefConfig``, have the same fields).

    Args:
        image_size (int): Side of the square images in pixels.
        min_objects (int): Fewest objects in a scene.
        max_objects (int): Most objects in a scene.
        small_size (tuple): Range of the half side of small objects, as a fraction of the image side.
        big_size (tuple): Same for big objects.
    """
    image_size: int = 128
    min_objects: int = 3
    max_objects: int = 5
    small_size: Tuple[float, float] = (0.07, 0.09)
    big_size: Tuple[float, float] = (0.12, 0.15)


@dataclass
class SceneObject:
    """One object of a scene: ``shape`` (its category), ``color``, ``size`` (``'small'``/``'big'``), centre
    ``(cx, cy)`` and half side ``r`` of its bounding square, in pixels."""
    shape: str
    color: str
    size: str
    cx: float
    cy: float
    r: float  # half side of the bounding square

    @property
    def box(self) -> Tuple[float, float, float, float]:
        """The bounding box ``(x1, y1, x2, y2)`` in pixels."""
        return (self.cx - self.r, self.cy - self.r, self.cx + self.r, self.cy + self.r)


def place_objects(rng: np.random.Generator, cfg: SceneConfig) -> List[SceneObject]:
    """Place ``min_objects`` to ``max_objects`` non-overlapping objects, at least two of the same shape (so that
    the category alone never singles out the first object).

    Args:
        rng (np.random.Generator): The scene's random stream.
        cfg: A :class:`SceneConfig` or any config with its fields.

    Returns:
        list[SceneObject]: The objects in drawing order (an object that finds no free place in 100 tries is
        left out).
    """
    s = cfg.image_size
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    target_shape = SHAPES[int(rng.integers(len(SHAPES)))]
    shapes = [target_shape, target_shape] + [SHAPES[int(i)] for i in rng.integers(len(SHAPES), size=n - 2)]
    objs: List[SceneObject] = []
    for shape in shapes:
        for _ in range(100):
            size = SIZES[int(rng.integers(2))]
            r = s * rng.uniform(*(cfg.small_size if size == 'small' else cfg.big_size))
            cx, cy = rng.uniform(r + 2, s - r - 2, size=2)
            if all(max(abs(cx - o.cx), abs(cy - o.cy)) > r + o.r + 3 for o in objs):
                color = list(COLORS)[int(rng.integers(len(COLORS)))]
                objs.append(SceneObject(shape, color, size, float(cx), float(cy), float(r)))
                break
    return objs


def draw_scene(objs: Sequence[SceneObject], rng: np.random.Generator, size: int) -> np.ndarray:
    """Render a scene: a noisy background of a random grey-ish colour and the objects, each colour jittered.

    Returns:
        np.ndarray: The image, (size, size, 3) uint8 RGB.
    """
    from PIL import Image, ImageDraw
    base = rng.integers(60, 120, size=3)
    noise = rng.normal(0, 12, size=(size, size, 1))
    bg = np.clip(base[None, None, :] + noise + rng.normal(0, 4, size=(size, size, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(bg)
    draw = ImageDraw.Draw(img)
    for o in objs:
        col = tuple(int(np.clip(c + rng.integers(-15, 16), 0, 255)) for c in COLORS[o.color])
        x0, y0, x1, y1 = o.box
        if o.shape == 'circle':
            draw.ellipse([x0, y0, x1, y1], fill=col)
        elif o.shape == 'square':
            draw.rectangle([x0, y0, x1, y1], fill=col)
        elif o.shape == 'triangle':
            draw.polygon([(o.cx, y0), (x1, y1), (x0, y1)], fill=col)
        else:  # diamond
            draw.polygon([(o.cx, y0), (x1, o.cy), (o.cx, y1), (x0, o.cy)], fill=col)
    return np.asarray(img)


def save_scene(objs: Sequence[SceneObject], rng: np.random.Generator, size: int, path: str) -> None:
    """:func:`draw_scene` and write the image as PNG to ``path``."""
    from PIL import Image
    Image.fromarray(draw_scene(objs, rng, size)).save(path)


def scene_record(objs: Sequence[SceneObject]) -> List[dict]:
    """Every object of a scene, in drawing order, as the generators write it to their JSON files:
    ``{shape, color, size, bbox}`` with ``bbox`` in x1, y1, x2, y2 pixels (2 decimals)."""
    return [dict(shape=o.shape, color=o.color, size=o.size, bbox=[round(v, 2) for v in o.box]) for o in objs]


def seed_stream(seed: int, stream: int, split: str) -> List[int]:
    """The seed of one split of one generator, stable whatever the other splits: ``[seed, stream,
    crc32(split)]``; scene ``i`` seeds ``np.random.default_rng([*stream, i])``. Streams in use: 100 captions,
    200 VQA (SynthRef's referring-expression splits seed with one integer); a new generator takes a new one."""
    return [seed, stream, zlib.crc32(split.encode())]


def render_scenes(root: str, split: str, num_scenes: int, cfg: SceneConfig, split_seed: Sequence[int]
                  ) -> Iterator[Tuple[int, str, List[SceneObject], np.random.Generator]]:
    """Place and render scenes ``0 .. num_scenes - 1`` of ``split`` under ``root/images/{split}/{id:06d}.png``.

    Args:
        root (str): The (temporary) data folder.
        split (str): The split name.
        num_scenes (int): How many scenes.
        cfg: A :class:`SceneConfig` or any config with its fields.
        split_seed (sequence[int]): The split's seed (:func:`seed_stream`).

    Yields:
        tuple: ``(scene_id, file_name, objs, rng)``: ``file_name`` relative to ``root/images``, the scene's
        objects and its random stream (after placement and drawing), to draw the scene's texts from.
    """
    os.makedirs(osp.join(root, 'images', split), exist_ok=True)
    for scene_id in range(num_scenes):
        rng = np.random.default_rng([*split_seed, scene_id])
        objs = place_objects(rng, cfg)
        file_name = f'{split}/{scene_id:06d}.png'
        save_scene(objs, rng, cfg.image_size, osp.join(root, 'images', file_name))
        scene_written()  # the progress of the data set being generated
        yield scene_id, file_name, objs, rng
