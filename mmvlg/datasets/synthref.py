"""SynthRef's generator: kept at this path for compatibility; it lives in :mod:`mmvlg.datasets.synthetic`.

:mod:`mmvlg.datasets.synthetic.synthref` has the generator and :class:`SynthRefDataset`, ``.scenes`` the scene
generator (``SceneObject``, ``place_objects``, ``draw_scene``), ``.expressions`` the referring-expression grammar
and ``.writer`` the atomic writer. ``vocabulary`` (SynthRef's words) stays importable from here.
"""
from .synthetic.expressions import EXTREMES, RELATIONS, extreme_expressions, relation_expressions
from .synthetic.expressions import matches as _matches
from .synthetic.expressions import noun_phrase as _np
from .synthetic.expressions import referring_expressions as _expressions
from .synthetic.expressions import unique_descriptions as _unique_descriptions
from .synthetic.scenes import COLORS, SHAPES, SIZES, SceneObject, draw_scene, place_objects, scene_record
from .synthetic.synthref import (
    FORMAT_VERSION,
    SPLIT_KINDS,
    SynthRefConfig,
    SynthRefDataset,
    caption_words,
    generate_split,
    generate_split_and_scenes,
    generate_synthref,
    vocabulary,
)
from .synthetic.writer import (
    UNLOCKED_STALE_AFTER_S,
    WRITER_LOCK,
    remove_stale_temporaries,
    write_generated_data,
)
from .synthetic.writer import hold_writer_lock as _hold_writer_lock

# the private names of the old module, which the caption and VQA generators imported
_Obj = SceneObject
_place_objects = place_objects
_draw = draw_scene
_scene_record = scene_record
_generate_split = generate_split_and_scenes
_extreme_expressions = extreme_expressions
_relation_expressions = relation_expressions

__all__ = ['SHAPES', 'COLORS', 'SIZES', 'RELATIONS', 'EXTREMES', 'SPLIT_KINDS', 'FORMAT_VERSION', 'SynthRefConfig',
           'SynthRefDataset', 'generate_split', 'generate_split_and_scenes', 'vocabulary', 'caption_words',
           'generate_synthref', 'WRITER_LOCK', 'UNLOCKED_STALE_AFTER_S', 'remove_stale_temporaries',
           'write_generated_data', '_matches', '_np', '_expressions', '_unique_descriptions', '_hold_writer_lock']
