"""Text-blind baselines of SynthRef: how far can a model go that sees the objects but not the expression?

The *text-blind* policy sees every object of the scene perfectly (shape, colour, size, position on a 3x3
grid) and the number of objects of the scene, but not the expression. It is fitted on the train split as a
frequency estimate of P(object is the referred one | its features), smoothed towards coarser feature sets
(so that rare combinations fall back on their parents), and picks in each scene the object with the highest
estimate. A second variant also sees how many objects share the object's shape: SynthRef only refers to
objects that have a same-category distractor, which the image shows. The *random* baseline picks an object
uniformly: its expected Prec@0.5 is the mean of 1 / (number of objects).

A model that does not clearly beat these numbers has not learned to read the expressions.

Needs ``annotations/scenes_{split}.json`` (written by the generator from format version 3 on).

Usage::

    python tools/analysis_tools/synthref_text_blind.py data/synthref [--splits val testA testB] [--json-out F]
"""
import argparse
import json
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

GRID = 3
# Feature sets from the coarsest to the finest; each level is smoothed towards the previous one.
LEVELS = (
    (),
    ('num_objects', ),
    ('num_objects', 'shape'),
    ('num_objects', 'shape', 'size'),
    ('num_objects', 'shape', 'size', 'color'),
    ('num_objects', 'shape', 'size', 'color', 'position'),
)
POLICIES = {
    'text_blind': LEVELS,
    'text_blind+distractors': ((), ) + tuple(('same_shape', ) + lv for lv in LEVELS),
}


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two x1, y1, x2, y2 boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def object_features(objs: Sequence[dict], width: float, height: float) -> List[Dict[str, object]]:
    """The features a text-blind observer sees, for every object of one scene."""
    feats = []
    for o in objs:
        x1, y1, x2, y2 = o['bbox']
        col = min(GRID - 1, int((x1 + x2) / 2 / width * GRID))
        row = min(GRID - 1, int((y1 + y2) / 2 / height * GRID))
        feats.append(dict(shape=o['shape'], color=o['color'], size=o['size'], position=(row, col),
                          num_objects=len(objs), same_shape=sum(p['shape'] == o['shape'] for p in objs)))
    return feats


def load_split(root: str, split: str) -> List[dict]:
    """The expressions of ``split``, each with its scene's objects, their features, the ground-truth box
    and the index of the referred object.

    Raises:
        FileNotFoundError: If an annotation or scene file is missing (scene files need format version 3).
        ValueError: If an expression's scene is not in the scene file.
    """
    ann_file = osp.join(root, 'annotations', f'finetune_synthref_{split}.json')
    scene_file = osp.join(root, 'annotations', f'scenes_{split}.json')
    for path in (ann_file, scene_file):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path!r} does not exist (scenes_*.json are written by SynthRef format '
                                    'version 3 and later: regenerate the data set)')
    with open(ann_file) as f:
        ann = json.load(f)
    with open(scene_file) as f:
        scenes = json.load(f)
    boxes = {}
    for a in ann['annotations']:
        x, y, w, h = a['bbox']
        boxes[a['image_id']] = [x, y, x + w, y + h]
    out = []
    for img in ann['images']:
        objs = scenes.get(str(img['original_id']))
        if not objs:
            raise ValueError(f'{scene_file}: no scene {img["original_id"]} (expression {img["id"]} of {ann_file})')
        gt = boxes[img['id']]
        ious = [box_iou(o['bbox'], gt) for o in objs]
        out.append(dict(expr_id=img['id'], scene=img['original_id'], objects=objs, gt_bbox=gt,
                        referred=max(range(len(objs)), key=ious.__getitem__),
                        features=object_features(objs, img['width'], img['height'])))
    return out


class FrequencyPolicy:
    """P(referred | features) by counting, smoothed level by level:
    ``p(level) = (hits + strength * p(parent)) / (count + strength)``.

    Args:
        levels (Sequence[tuple]): Feature names per level, coarsest first.
        strength (float): Pseudo-count of the parent estimate. Defaults to 5.
    """

    def __init__(self, levels: Sequence[Tuple[str, ...]], strength: float = 5.0) -> None:
        self.levels = levels
        self.strength = strength
        self.hits: Dict[tuple, float] = defaultdict(float)
        self.counts: Dict[tuple, float] = defaultdict(float)

    def _keys(self, feat: dict) -> List[tuple]:
        return [(i, ) + tuple(feat[name] for name in names) for i, names in enumerate(self.levels)]

    def fit(self, expressions: Sequence[dict]) -> 'FrequencyPolicy':
        for e in expressions:
            for i, feat in enumerate(e['features']):
                for key in self._keys(feat):
                    self.counts[key] += 1
                    self.hits[key] += float(i == e['referred'])
        return self

    def estimate(self, feat: dict) -> float:
        p = 0.0
        for level, key in enumerate(self._keys(feat)):
            if level == 0:
                p = self.hits[key] / self.counts[key] if self.counts[key] else 0.0
            else:
                p = (self.hits[key] + self.strength * p) / (self.counts[key] + self.strength)
        return p

    def choose(self, features: Sequence[dict]) -> int:
        """Index of the object with the highest estimate (the first one on ties)."""
        scores = [self.estimate(f) for f in features]
        return max(range(len(scores)), key=scores.__getitem__)


def precision(policy: FrequencyPolicy, expressions: Sequence[dict], iou_thr: float = 0.5) -> float:
    """Prec@``iou_thr`` of the policy's choice against the ground-truth box."""
    if not expressions:
        return 0.0
    hits = [box_iou(e['objects'][policy.choose(e['features'])]['bbox'], e['gt_bbox']) >= iou_thr
            for e in expressions]
    return sum(hits) / len(hits)


def random_precision(expressions: Sequence[dict]) -> float:
    """Expected Prec@0.5 of a uniformly random object: the mean of 1 / (number of objects)."""
    return sum(1 / len(e['objects']) for e in expressions) / len(expressions) if expressions else 0.0


def evaluate(root: str, splits: Sequence[str] = ('val', 'testA', 'testB'), train_split: str = 'train',
             strength: float = 5.0) -> Dict[str, Dict[str, float]]:
    """Fit the text-blind policies on ``train_split`` and return policy -> split -> Prec@0.5 (with
    ``random`` and the number of expressions, ``num_expressions``)."""
    train = load_split(root, train_split)
    data = {s: load_split(root, s) for s in splits}
    results: Dict[str, Dict[str, float]] = {'num_expressions': {s: len(d) for s, d in data.items()}}
    results['random'] = {s: random_precision(d) for s, d in data.items()}
    for name, levels in POLICIES.items():
        policy = FrequencyPolicy(levels, strength).fit(train)
        results[name] = {s: precision(policy, d) for s, d in data.items()}
    return results


def format_table(results: Dict[str, Dict[str, float]]) -> str:
    splits = list(results['num_expressions'])
    rows = [f'{"policy":<24}' + ''.join(f'{s:>9}' for s in splits),
            f'{"(expressions)":<24}' + ''.join(f'{results["num_expressions"][s]:>9d}' for s in splits)]
    for name in ['random', *POLICIES]:
        rows.append(f'{name:<24}' + ''.join(f'{results[name][s] * 100:>8.2f}%' for s in splits))
    return '\n'.join(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description='Text-blind and random baselines (Prec@0.5) of SynthRef')
    parser.add_argument('root', help='SynthRef root (with annotations/ and images/)')
    parser.add_argument('--splits', nargs='+', default=['val', 'testA', 'testB'], help='evaluation splits')
    parser.add_argument('--train-split', default='train', help='split the policy is fitted on')
    parser.add_argument('--strength', type=float, default=5.0, help='smoothing pseudo-count')
    parser.add_argument('--json-out', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    try:
        results = evaluate(args.root, args.splits, args.train_split, args.strength)
    except (FileNotFoundError, ValueError) as err:
        print(f'synthref_text_blind: error: {err}', file=sys.stderr)
        return 1
    print(format_table(results))
    print(json.dumps(results, sort_keys=True))
    if args.json_out:
        with open(args.json_out, 'w') as f:
            json.dump(results, f, indent=1, sort_keys=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
