"""Render ``demo/demo.png``, the demo scene of the README's Quick start, with SynthRef's renderer.

The scene is fixed (not sampled): a small and a big red circle (so that "the small red circle" needs the size
word), a green square left of a blue circle and a second, yellow square to the right (so that "the square left
of the blue circle" needs the relation). Every word of these expressions is in SynthRef's vocabulary, so the
SynthRef configs read them without ``[UNK]``. ::

    python demo/make_demo_image.py            # writes demo/demo.png (128 x 128, about 40 KB)
"""
import argparse
import os.path as osp

import numpy as np

from mmvlg.datasets.synthetic.scenes import SceneObject, save_scene

# shape, colour, size, centre x, centre y, half side (pixels of the 128 x 128 image)
DEMO_OBJECTS = [
    SceneObject('circle', 'red', 'small', 26.0, 40.0, 9.0),
    SceneObject('circle', 'red', 'big', 90.0, 30.0, 17.0),
    SceneObject('square', 'green', 'big', 46.0, 96.0, 14.0),
    SceneObject('square', 'yellow', 'small', 104.0, 66.0, 8.0),
    SceneObject('circle', 'blue', 'small', 98.0, 104.0, 11.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description='Render the demo scene')
    parser.add_argument('--out', default=osp.join(osp.dirname(osp.abspath(__file__)), 'demo.png'))
    parser.add_argument('--size', type=int, default=128)
    args = parser.parse_args()
    scale = args.size / 128
    objs = [SceneObject(o.shape, o.color, o.size, o.cx * scale, o.cy * scale, o.r * scale) for o in DEMO_OBJECTS]
    save_scene(objs, np.random.default_rng(2024), args.size, args.out)
    print(args.out)


if __name__ == '__main__':
    main()
