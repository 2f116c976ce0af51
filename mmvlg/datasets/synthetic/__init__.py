"""Synthetic data sets, generated on first use with no download (see ``docs/architecture.md``).

One scene generator (:mod:`.scenes`: objects, placement, rendering, seed streams), one grammar of unique
descriptions (:mod:`.expressions`) and one writer (:mod:`.writer`: write once into a locked temporary folder moved
into place, stale-folder cleanup, rank 0 generates while the others wait) serve every set; each dataset class sits
beside its generator:

* :mod:`.synthref`: SynthRef referring expressions (:class:`SynthRefDataset`, MDETR's format);
* :mod:`.captions`: SynthRef captions (:class:`SynthRefCaptionDataset`, COCO captions);
* :mod:`.vqa`: SynthRef VQA (:class:`SynthRefVQADataset`, VQA v2);
* :mod:`.region_text`: SynthRef region-text (:class:`SynthRefRegionTextDataset`, X-VLM's region-text format, and
  :class:`SynthRefImageTextDataset`, the same scenes' captions);
* :mod:`.nlvr2`: SynthRef NLVR2 (:class:`SynthRefNLVR2Dataset`, X-VLM's NLVR2 layout: scene pairs, statements);
* :mod:`.entailment`: SynthRef entailment (:class:`SynthRefEntailmentDataset`, SNLI-VE's JSON lines).

A new set is a config dataclass (its arguments, stored in ``meta.json``), a split function over
:func:`render_scenes` with a new :func:`seed_stream`, a ``write(tmp)`` passed to :func:`write_generated_data`,
and a dataset class that calls :func:`generate_once`.
"""
from .captions import (
    SynthRefCaptionDataset,
    SynthRefCaptionsConfig,
    caption_vocabulary,
    generate_synthref_captions,
)
from .entailment import SynthRefEntailmentConfig, SynthRefEntailmentDataset, generate_synthref_entailment
from .expressions import (
    extreme_expressions,
    noun_phrase,
    referring_expressions,
    relation_expressions,
    unique_descriptions,
)
from .nlvr2 import SynthRefNLVR2Config, SynthRefNLVR2Dataset, generate_synthref_nlvr2
from .region_text import (
    SynthRefImageTextDataset,
    SynthRefRegionTextConfig,
    SynthRefRegionTextDataset,
    generate_synthref_region_text,
)
from .scenes import (
    COLORS,
    SHAPES,
    SIZES,
    SceneConfig,
    SceneObject,
    draw_scene,
    place_objects,
    render_scenes,
    save_scene,
    scene_record,
    seed_stream,
)
from .synthref import SynthRefConfig, SynthRefDataset, generate_synthref
from .vqa import SynthRefVQAConfig, SynthRefVQADataset, generate_synthref_vqa
from .writer import dump_json, generate_once, remove_stale_temporaries, write_generated_data, write_lines

__all__ = [
    'SHAPES', 'COLORS', 'SIZES', 'SceneConfig', 'SceneObject', 'place_objects', 'draw_scene', 'save_scene',
    'scene_record', 'seed_stream', 'render_scenes', 'noun_phrase', 'unique_descriptions', 'extreme_expressions',
    'relation_expressions', 'referring_expressions', 'write_generated_data', 'remove_stale_temporaries',
    'generate_once', 'dump_json', 'write_lines', 'SynthRefConfig', 'generate_synthref', 'SynthRefDataset',
    'SynthRefCaptionsConfig', 'generate_synthref_captions', 'SynthRefCaptionDataset', 'SynthRefVQAConfig',
    'generate_synthref_vqa', 'SynthRefVQADataset', 'caption_vocabulary', 'SynthRefRegionTextConfig',
    'generate_synthref_region_text', 'SynthRefRegionTextDataset', 'SynthRefImageTextDataset', 'SynthRefNLVR2Config',
    'generate_synthref_nlvr2', 'SynthRefNLVR2Dataset', 'SynthRefEntailmentConfig', 'generate_synthref_entailment',
    'SynthRefEntailmentDataset'
]
