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
"""
import json
import os
import os.path as osp
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX: temporary folders are judged by their age only
    fcntl = None

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
RELATIONS = ('left of', 'right of', 'above', 'below')
EXTREMES = ('leftmost', 'rightmost', 'topmost', 'bottommost')
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


@dataclass
class _Obj:
    shape: str
    color: str
    size: str
    cx: float
    cy: float
    r: float  # half side of the bounding square

    @property
    def box(self) -> Tuple[float, float, float, float]:
        return (self.cx - self.r, self.cy - self.r, self.cx + self.r, self.cy + self.r)


def _place_objects(rng: np.random.Generator, cfg: SynthRefConfig) -> List[_Obj]:
    s = cfg.image_size
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    target_shape = SHAPES[int(rng.integers(len(SHAPES)))]
    shapes = [target_shape, target_shape] + [SHAPES[int(i)] for i in rng.integers(len(SHAPES), size=n - 2)]
    objs: List[_Obj] = []
    for shape in shapes:
        for _ in range(100):
            size = SIZES[int(rng.integers(2))]
            r = s * rng.uniform(*(cfg.small_size if size == 'small' else cfg.big_size))
            cx, cy = rng.uniform(r + 2, s - r - 2, size=2)
            if all(max(abs(cx - o.cx), abs(cy - o.cy)) > r + o.r + 3 for o in objs):
                color = list(COLORS)[int(rng.integers(len(COLORS)))]
                objs.append(_Obj(shape, color, size, float(cx), float(cy), float(r)))
                break
    return objs


def _draw(objs: Sequence[_Obj], rng: np.random.Generator, size: int) -> np.ndarray:
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


def _matches(o: _Obj, shape: str, color: Optional[str], size: Optional[str]) -> bool:
    return o.shape == shape and (color is None or o.color == color) and (size is None or o.size == size)


def _np(o: _Obj, color: Optional[str], size: Optional[str]) -> str:
    words = ['the'] + ([size] if size else []) + ([color] if color else []) + [o.shape]
    return ' '.join(words)


def _unique_descriptions(objs: Sequence[_Obj], t: int) -> List[Tuple[Optional[str], Optional[str]]]:
    """(color, size) filters, besides the shape, that single out ``objs[t]``; the shortest ones first."""
    o = objs[t]
    out = []
    for color, size in ((None, None), (o.color, None), (None, o.size), (o.color, o.size)):
        if sum(_matches(p, o.shape, color, size) for p in objs) == 1:
            out.append((color, size))
    return out


def _coord(o: _Obj, axis: str) -> float:
    return o.cx if axis == 'x' else o.cy


def _extreme_expressions(objs: Sequence[_Obj], t: int, margin: float) -> List[Tuple[str, str]]:
    o = objs[t]
    out = []
    for color in (None, o.color):
        group = [p for p in objs if _matches(p, o.shape, color, None)]
        if len(group) < 2:
            continue
        for word, axis, sign in (('leftmost', 'x', 1), ('rightmost', 'x', -1), ('topmost', 'y', 1),
                                 ('bottommost', 'y', -1)):
            others = [sign * _coord(p, axis) for p in group if p is not o]
            if sign * _coord(o, axis) + margin < min(others):
                phrase = f'the {word} {color + " " if color else ""}{o.shape}'
                out.append((phrase, phrase))
    return out


def _relation_expressions(objs: Sequence[_Obj], t: int, margin: float) -> List[Tuple[str, str]]:
    o = objs[t]
    out = []
    for a, anchor in enumerate(objs):
        if a == t:
            continue
        anchor_desc = _unique_descriptions(objs, a)
        if not anchor_desc:
            continue
        ac, asz = anchor_desc[0]
        anchor_np = _np(anchor, ac, asz)
        for rel, axis, sign in (('left of', 'x', -1), ('right of', 'x', 1), ('above', 'y', -1),
                                ('below', 'y', 1)):
            def holds(p: _Obj) -> bool:
                return sign * (_coord(p, axis) - _coord(anchor, axis)) > p.r + anchor.r * 0.5

            def clearly_not(p: _Obj) -> bool:
                return sign * (_coord(p, axis) - _coord(anchor, axis)) < p.r * 0.5 - margin

            for color in (None, o.color):
                group = [p for p in objs if p is not anchor and _matches(p, o.shape, color, None)]
                if len(group) < 2 or not holds(o):
                    continue
                if all(clearly_not(p) for p in group if p is not o):
                    target_np = f'the {color + " " if color else ""}{o.shape}'
                    out.append((f'{target_np} {rel} {anchor_np}', target_np))
    return out


def _expressions(objs: Sequence[_Obj], t: int, kinds: Sequence[str], img_size: int) -> Dict[str, List]:
    margin = img_size * 0.03
    found = {}
    if 'attribute' in kinds:
        descs = [d for d in _unique_descriptions(objs, t) if d != (None, None)]
        found['attribute'] = [(_np(objs[t], c, s), _np(objs[t], c, s)) for c, s in descs]
    if 'extreme' in kinds:
        found['extreme'] = _extreme_expressions(objs, t, margin)
    if 'relation' in kinds:
        found['relation'] = _relation_expressions(objs, t, margin)
    return {k: v for k, v in found.items() if v}


def generate_split(split: str, num_scenes: int, cfg: SynthRefConfig, root: str) -> Dict:
    """Render ``num_scenes`` scenes of ``split`` under ``root/images/split`` and return the MDETR-format
    annotation dict (one image entry per expression)."""
    return _generate_split(split, num_scenes, cfg, root)[0]


def _scene_record(objs: Sequence[_Obj]) -> List[dict]:
    """Every object of a scene, in drawing order, as written to ``scenes_{split}.json``."""
    return [dict(shape=o.shape, color=o.color, size=o.size, bbox=[round(v, 2) for v in o.box]) for o in objs]


def _generate_split(split: str, num_scenes: int, cfg: SynthRefConfig, root: str) -> Tuple[Dict, Dict[str, list]]:
    """:func:`generate_split` that also returns the scene records: scene id (as a string, the JSON key)
    -> list of objects ``{shape, color, size, bbox}`` with ``bbox`` in x1, y1, x2, y2 pixels."""
    kinds = SPLIT_KINDS[split]
    split_seed = cfg.seed * 1000 + list(SPLIT_KINDS).index(split)
    img_dir = osp.join(root, 'images', split)
    os.makedirs(img_dir, exist_ok=True)
    from PIL import Image
    images, annotations = [], []
    scenes: Dict[str, list] = {}
    scene_id = 0
    attempt = 0
    while scene_id < num_scenes:
        rng = np.random.default_rng([split_seed, attempt])
        attempt += 1
        objs = _place_objects(rng, cfg)
        candidates = []
        for t in range(len(objs)):
            if sum(p.shape == objs[t].shape for p in objs) < 2:
                continue  # only objects that have a same-category distractor are referred to
            exprs = _expressions(objs, t, kinds, cfg.image_size)
            if exprs:
                candidates.append((t, exprs))
        if not candidates:
            continue
        order = rng.permutation(len(candidates))[:cfg.expressions_per_scene]
        file_name = f'{split}/{scene_id:06d}.png'
        Image.fromarray(_draw(objs, rng, cfg.image_size)).save(osp.join(root, 'images', file_name))
        scenes[str(scene_id)] = _scene_record(objs)
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
    categories = [dict(id=i + 1, name=s) for i, s in enumerate(SHAPES)]
    return dict(images=images, annotations=annotations, categories=categories), scenes


def vocabulary() -> List[str]:
    """Every word that SynthRef captions can contain (flipped captions included)."""
    words = {'the', 'of'} | set(SHAPES) | set(COLORS) | set(SIZES) | set(EXTREMES)
    for rel in RELATIONS:
        words.update(rel.split())
    return sorted(words)


def generate_synthref(root: str, cfg: Optional[SynthRefConfig] = None, force: bool = False) -> str:
    """Write SynthRef under ``root`` unless an identical copy (same ``meta.json``) is already there.

    The data are written to a temporary folder beside ``root`` and moved into place at the end, so an
    interrupted run never leaves a half-written data set behind.

    Returns:
        str: ``root``.
    """
    cfg = cfg or SynthRefConfig()

    def write(tmp: str) -> None:
        for split, n in cfg.num_scenes.items():
            ann, scenes = _generate_split(split, n, cfg, tmp)
            with open(osp.join(tmp, 'annotations', f'finetune_synthref_{split}.json'), 'w') as f:
                json.dump(ann, f)
            with open(osp.join(tmp, 'annotations', f'scenes_{split}.json'), 'w') as f:
                json.dump(scenes, f)
        with open(osp.join(tmp, 'vocab.txt'), 'w') as f:
            f.write('\n'.join(vocabulary()) + '\n')

    return write_generated_data(root, asdict(cfg), write, 'a SynthRef', '.synthref-', force)


# The lock file of a generator's temporary folder, held (flock) while it writes: a temporary folder whose lock
# nobody holds was left behind by a run that died.
WRITER_LOCK = '.writer.lock'
# A temporary folder without a lock file (written by an mmvlg version without locks) is stale after this long.
UNLOCKED_STALE_AFTER_S = 3600.0


def _hold_writer_lock(tmp: str) -> Optional[int]:
    """Lock ``tmp/WRITER_LOCK`` for this process (the descriptor; None without ``fcntl``). The file is locked
    under another name and then renamed, so that nobody ever finds it unlocked while the writer lives."""
    if fcntl is None:
        return None
    partial = osp.join(tmp, WRITER_LOCK + '.partial')
    fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(partial, osp.join(tmp, WRITER_LOCK))
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_stale_temporaries(parent: str, tmp_prefix: str, stale_after_s: float = UNLOCKED_STALE_AFTER_S
                             ) -> List[str]:
    """Remove the temporary folders that runs of one generator left in ``parent`` when they died.

    Only folders named as this generator names them (``tmp_prefix`` and the 8 random characters of
    ``tempfile.mkdtemp``, so ``'.synthref-'`` does not match the ``'.synthref-captions-'`` folders) are
    considered. A folder whose :data:`WRITER_LOCK` is held belongs to a live writer (another process or rank
    generating at the same time) and is kept; one whose lock can be taken is stale. A folder without a lock
    file (an older mmvlg, or a writer between ``mkdtemp`` and its lock) is stale only when it has not changed
    for ``stale_after_s`` seconds.

    Returns:
        list[str]: The removed folders.
    """
    pattern = re.compile(re.escape(tmp_prefix) + r'[a-z0-9_]{8}')
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    removed = []
    for name in sorted(names):
        path = osp.join(parent, name)
        if not pattern.fullmatch(name) or osp.islink(path) or not osp.isdir(path):
            continue
        lock = osp.join(path, WRITER_LOCK)
        if fcntl is not None and osp.isfile(lock):
            try:
                fd = os.open(lock, os.O_RDWR)
            except OSError:  # removed meanwhile (its writer finished, or another cleaner)
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # a live writer holds it
                    continue
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            finally:
                os.close(fd)
        else:
            try:
                age = time.time() - os.stat(path).st_mtime
            except OSError:
                continue
            if age > stale_after_s:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _same_meta(meta_file: str, meta: dict) -> bool:
    try:
        with open(meta_file) as f:
            return json.load(f) == meta
    except (OSError, ValueError):
        return False


def write_generated_data(root: str, meta: dict, write: Callable[[str], None], what: str, tmp_prefix: str,
                         force: bool = False) -> str:
    """Write a generated data set under ``root`` once: skip when ``root/meta.json`` equals ``meta``, refuse
    (``FileExistsError``) when it holds other arguments unless ``force``. ``write(tmp)`` fills a temporary folder
    beside ``root`` (with an ``annotations`` subfolder already made) that is moved into place at the end, so an
    interrupted run never leaves a half-written data set behind. ``what`` names the data set in the error.

    The temporary folder is named ``tmp_prefix`` + 8 random characters and holds a locked :data:`WRITER_LOCK`
    while it is written; every call first removes the stale temporary folders of the same generator
    (:func:`remove_stale_temporaries`), e.g. those of a run killed before it could clean up. When another
    process finishes the same data set first, its copy is kept.

    Returns:
        str: ``root``.
    """
    meta = json.loads(json.dumps(meta))  # tuples become lists, as read back from meta.json
    meta_file = osp.join(root, 'meta.json')
    parent = osp.dirname(osp.abspath(root))
    removed = remove_stale_temporaries(parent, tmp_prefix)
    if removed:
        from mmengine.logging import print_log
        print_log(f'removed {len(removed)} stale temporary folder(s) of interrupted {what} generation: '
                  f'{", ".join(removed)}', logger='current')
    if not force and osp.isfile(meta_file):
        if _same_meta(meta_file, meta):
            return root
        raise FileExistsError(
            f'{root!r} holds {what} generated with other arguments ({meta_file}); remove it, choose '
            'another root or pass force=True to overwrite it')
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=tmp_prefix, dir=parent)
    lock_fd = None
    try:
        lock_fd = _hold_writer_lock(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes a private (0700) folder; use the usual permissions
        os.makedirs(osp.join(tmp, 'annotations'))
        write(tmp)
        with open(osp.join(tmp, 'meta.json'), 'w') as f:
            json.dump(meta, f, indent=1)
        if lock_fd is not None:
            os.remove(osp.join(tmp, WRITER_LOCK))  # not part of the data (still held until the folder is moved)
        if not force and _same_meta(meta_file, meta):
            return root  # another process wrote the same data set meanwhile
        if osp.exists(root):
            shutil.rmtree(root)
        try:
            os.replace(tmp, root)
        except OSError:
            if not _same_meta(meta_file, meta):  # not another process's identical copy that just landed
                raise
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        if lock_fd is not None:
            os.close(lock_fd)
    return root


_WORD = re.compile(r'[a-z]+')


def caption_words(caption: str) -> List[str]:
    return _WORD.findall(caption.lower())
