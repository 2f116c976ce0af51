"""The grammar of the synthetic scenes: noun phrases that single out one object of a scene.

Each function returns only expressions that name exactly one object (:class:`~.scenes.SceneObject`) of the scene,
as ``(expression, target noun phrase)`` pairs where the target noun phrase is the prefix of the expression that
names the referred object (its ``tokens_positive`` span):

* :func:`unique_descriptions`: the (colour, size) filters that, besides the shape, single out an object;
* :func:`extreme_expressions`: ``"the leftmost square"``, ``"the topmost blue triangle"`` (with a clear margin);
* :func:`relation_expressions`: ``"the circle left of the big green diamond"`` (the anchor itself described
  uniquely);
* :func:`referring_expressions`: those of the asked kinds (``attribute``, ``extreme``, ``relation``).
"""
from typing import Dict, List, Optional, Sequence, Tuple

from .scenes import SceneObject

__all__ = ['RELATIONS', 'EXTREMES', 'EXPRESSION_KINDS', 'matches', 'noun_phrase', 'unique_descriptions',
           'extreme_expressions', 'relation_expressions', 'referring_expressions']

RELATIONS = ('left of', 'right of', 'above', 'below')
EXTREMES = ('leftmost', 'rightmost', 'topmost', 'bottommost')
EXPRESSION_KINDS = ('attribute', 'extreme', 'relation')


def matches(o: SceneObject, shape: str, color: Optional[str], size: Optional[str]) -> bool:
    """Whether ``o`` has ``shape`` and, where given, ``color`` and ``size``."""
    return o.shape == shape and (color is None or o.color == color) and (size is None or o.size == size)


def noun_phrase(o: SceneObject, color: Optional[str], size: Optional[str]) -> str:
    """``"the [size] [color] shape"``."""
    words = ['the'] + ([size] if size else []) + ([color] if color else []) + [o.shape]
    return ' '.join(words)


def unique_descriptions(objs: Sequence[SceneObject], t: int) -> List[Tuple[Optional[str], Optional[str]]]:
    """(color, size) filters, besides the shape, that single out ``objs[t]``; the shortest ones first."""
    o = objs[t]
    out = []
    for color, size in ((None, None), (o.color, None), (None, o.size), (o.color, o.size)):
        if sum(matches(p, o.shape, color, size) for p in objs) == 1:
            out.append((color, size))
    return out


def _coord(o: SceneObject, axis: str) -> float:
    return o.cx if axis == 'x' else o.cy


def extreme_expressions(objs: Sequence[SceneObject], t: int, margin: float) -> List[Tuple[str, str]]:
    """``"the leftmost [color] shape"`` (and right-, top-, bottommost) for ``objs[t]`` when it is the extreme
    one of its shape (and colour) by more than ``margin`` pixels."""
    o = objs[t]
    out = []
    for color in (None, o.color):
        group = [p for p in objs if matches(p, o.shape, color, None)]
        if len(group) < 2:
            continue
        for word, axis, sign in (('leftmost', 'x', 1), ('rightmost', 'x', -1), ('topmost', 'y', 1),
                                 ('bottommost', 'y', -1)):
            others = [sign * _coord(p, axis) for p in group if p is not o]
            if sign * _coord(o, axis) + margin < min(others):
                phrase = f'the {word} {color + " " if color else ""}{o.shape}'
                out.append((phrase, phrase))
    return out


def relation_expressions(objs: Sequence[SceneObject], t: int, margin: float) -> List[Tuple[str, str]]:
    """``"the [color] shape <relation> <anchor>"`` for ``objs[t]``: it is in the relation to an anchor that is
    described uniquely, and every other object of its shape (and colour) clearly is not (by ``margin`` pixels)."""
    o = objs[t]
    out = []
    for a, anchor in enumerate(objs):
        if a == t:
            continue
        anchor_desc = unique_descriptions(objs, a)
        if not anchor_desc:
            continue
        ac, asz = anchor_desc[0]
        anchor_np = noun_phrase(anchor, ac, asz)
        for rel, axis, sign in (('left of', 'x', -1), ('right of', 'x', 1), ('above', 'y', -1),
                                ('below', 'y', 1)):
            def holds(p: SceneObject) -> bool:
                return sign * (_coord(p, axis) - _coord(anchor, axis)) > p.r + anchor.r * 0.5

            def clearly_not(p: SceneObject) -> bool:
                return sign * (_coord(p, axis) - _coord(anchor, axis)) < p.r * 0.5 - margin

            for color in (None, o.color):
                group = [p for p in objs if p is not anchor and matches(p, o.shape, color, None)]
                if len(group) < 2 or not holds(o):
                    continue
                if all(clearly_not(p) for p in group if p is not o):
                    target_np = f'the {color + " " if color else ""}{o.shape}'
                    out.append((f'{target_np} {rel} {anchor_np}', target_np))
    return out


def referring_expressions(objs: Sequence[SceneObject], t: int, kinds: Sequence[str], img_size: int
                          ) -> Dict[str, List[Tuple[str, str]]]:
    """The expressions of each asked kind (of :data:`EXPRESSION_KINDS`) that single out ``objs[t]``; kinds
    without any are left out. The margins are 3% of the image side."""
    margin = img_size * 0.03
    found = {}
    if 'attribute' in kinds:
        descs = [d for d in unique_descriptions(objs, t) if d != (None, None)]
        found['attribute'] = [(noun_phrase(objs[t], c, s), noun_phrase(objs[t], c, s)) for c, s in descs]
    if 'extreme' in kinds:
        found['extreme'] = extreme_expressions(objs, t, margin)
    if 'relation' in kinds:
        found['relation'] = relation_expressions(objs, t, margin)
    return {k: v for k, v in found.items() if v}
