"""Issue 13, items 7-13: bad inputs that used to get through the data layer (mmvlg/datasets/).

Every test builds its own tiny data (a few pixels, a few entries) and names the issue item it covers.
"""
import io
import json
import os
import os.path as osp
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from mmvlg.datasets import (
    AnnotationError,
    CaptionDataset,
    ImageError,
    RefCOCODataset,
    VQAv2Dataset,
    generate_synthref_captions,
    generate_synthref_vqa,
)
from mmvlg.datasets import synthref as synthref_module
from mmvlg.datasets.synthref import SynthRefConfig, generate_synthref
from mmvlg.datasets.synthref_captions import SynthRefCaptionsConfig
from mmvlg.datasets.synthref_vqa import SynthRefVQAConfig
from mmvlg.datasets.validation import DEFAULT_MAX_IMAGE_SIZE
from mmvlg.utils import register_all_modules

register_all_modules()

CAPTION = 'the red circle left of the big green diamond'
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'), dict(type='PackGroundingInputs')]


# ---------------------------------------------------------------------------------------------------- helpers
def save_image(path, width=16, height=12, fmt=None):
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(
        path, format=fmt)


def encoded(width, height, fmt):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def image(i, file_name='a.png', caption=CAPTION, height=12, width=16, **kw):
    return dict(id=i, file_name=file_name, height=height, width=width, caption=caption, original_id=100 + i, **kw)


def box(i, image_id, bbox=(1, 2, 5, 4), spans=((0, 14), )):
    return dict(id=i, image_id=image_id, bbox=list(bbox) if isinstance(bbox, tuple) else bbox,
                tokens_positive=[list(s) for s in spans] if isinstance(spans, tuple) else spans)


def write_ann(root, images, annotations, make_images=True, name='ann.json'):
    """An MDETR-format file (NaN and infinity written as JSON's NaN/Infinity) and 16x12 PNGs for its images."""
    if make_images:
        for img in images:
            if isinstance(img, dict) and not osp.exists(root / 'imgs' / img['file_name']):
                save_image(str(root / 'imgs' / img['file_name']))
    (root / name).write_text(json.dumps(dict(images=images, annotations=annotations, categories=[])))
    return str(root / name)


def refcoco(root, ann_file, **kwargs):
    kwargs.setdefault('pipeline', [])
    return RefCOCODataset(data_root=str(root), ann_file=ann_file, data_prefix=dict(img='imgs/'), **kwargs)


def ids(ds):
    return [ds.get_data_info(i)['img_id'] for i in range(len(ds))]


# ---------------------------------------------------------------------------------------- item 7: temp folders
def _stale_temporary(parent, name, locked_by_us=False):
    """A temporary folder as a writer leaves it: with its lock file, held (a live writer) or not (a dead one)."""
    path = osp.join(parent, name)
    os.makedirs(osp.join(path, 'images'))
    fd = synthref_module._hold_writer_lock(path)
    if not locked_by_us:
        os.close(fd)  # the writer died: its lock went with it
        return path, None
    return path, fd


def test_item7_stale_synthref_temporaries_are_removed_live_ones_kept(tmp_path):
    """Issue 13 item 7: an interrupted SynthRef generation left `.synthref-*` folders behind forever; the next
    run removes the stale ones of its own generator and keeps those of live writers and of other generators."""
    parent = str(tmp_path)
    dead, _ = _stale_temporary(parent, '.synthref-dead0001')
    live, live_fd = _stale_temporary(parent, '.synthref-live0001', locked_by_us=True)  # another rank writing
    other_gen, _ = _stale_temporary(parent, '.synthref-captions-dead0001')  # the captions generator's
    old_unlocked = osp.join(parent, '.synthref-old00001')  # an older mmvlg's folder, untouched for 2 hours
    os.makedirs(old_unlocked)
    past = time.time() - 7200
    os.utime(old_unlocked, (past, past))
    fresh_unlocked = osp.join(parent, '.synthref-new00001')  # a writer between mkdtemp and its lock
    os.makedirs(fresh_unlocked)
    unrelated = osp.join(parent, '.synthref-mine')  # not a generator's name
    os.makedirs(unrelated)
    try:
        cfg = SynthRefConfig(num_scenes=dict(train=1, val=1, testA=1, testB=1), image_size=32)
        root = generate_synthref(osp.join(parent, 'synthref'), cfg)
        assert not osp.exists(dead) and not osp.exists(old_unlocked)
        assert osp.isdir(live) and osp.isdir(other_gen) and osp.isdir(fresh_unlocked) and osp.isdir(unrelated)
        assert not osp.exists(osp.join(root, synthref_module.WRITER_LOCK))  # the lock is no part of the data
        # the cached data set is reused, and a folder left since is still cleaned on the next run
        dead2, _ = _stale_temporary(parent, '.synthref-dead0002')
        generate_synthref(root, cfg)
        assert not osp.exists(dead2) and osp.isdir(live)
    finally:
        os.close(live_fd)
    # once its writer is gone, the formerly live folder is stale too
    generate_synthref(root, cfg)
    assert not osp.exists(live)


def test_item7_captions_and_vqa_generators_clean_their_own_temporaries(tmp_path):
    """Issue 13 item 7: the SynthRef captions and SynthRef VQA generators, which write through temporary folders
    too, remove their own stale folders and nobody else's."""
    parent = str(tmp_path)
    caps, _ = _stale_temporary(parent, '.synthref-captions-dead0001')
    vqa, _ = _stale_temporary(parent, '.synthref-vqa-dead0001')
    ref, _ = _stale_temporary(parent, '.synthref-dead0001')
    generate_synthref_captions(osp.join(parent, 'caps'), SynthRefCaptionsConfig(num_scenes=dict(val=1),
                                                                                image_size=32))
    assert not osp.exists(caps) and osp.isdir(vqa) and osp.isdir(ref)
    generate_synthref_vqa(osp.join(parent, 'vqa'), SynthRefVQAConfig(num_scenes=dict(val=1), image_size=32))
    assert not osp.exists(vqa) and osp.isdir(ref)


# ------------------------------------------------------------------------------------ item 8: non-finite numbers
@pytest.mark.parametrize('bbox', [[float('nan'), 2, 5, 4], [1, 2, float('inf'), 4], [1, 2, 5, float('-inf')]])
def test_item8_non_finite_box_is_rejected_or_skipped(tmp_path, bbox):
    """Issue 13 item 8: NaN/infinite box coordinates passed validation (with and without skip_invalid)."""
    ann = write_ann(tmp_path, [image(0), image(3)], [box(0, 0), box(9, 3, bbox=bbox)])
    with pytest.raises(AnnotationError, match=r'ann\.json: expression 3 \(a\.png\): annotation 9 has a '
                                              r'non-finite "bbox"'):
        refcoco(tmp_path, ann)
    with pytest.warns(UserWarning, match=r'skipped 1 invalid expression\(s\).*expression 3 .*non-finite'):
        ds = refcoco(tmp_path, ann, skip_invalid=True)
    assert ids(ds) == [0]


@pytest.mark.parametrize('spans', [[[float('nan'), 5]], [[0, float('inf')]], [[0.5, 5]]])
def test_item8_non_finite_span_is_rejected(tmp_path, spans):
    """Issue 13 item 8: non-finite (or fractional) numbers in tokens_positive spans are an error naming the file
    and the expression."""
    ann = write_ann(tmp_path, [image(4)], [box(2, 4, spans=spans)])
    with pytest.raises(AnnotationError, match=r'ann\.json: expression 4 \(a\.png\): annotation 2: '
                                              r'tokens_positive span .* not two integer character positions'):
        refcoco(tmp_path, ann)


def test_item8_non_finite_phrase_span_of_flickr_is_rejected(tmp_path):
    """Issue 13 items 8 and 13: the same for the phrase spans (tokens_positive_eval) of Flickr30k Entities,
    where a span of strings used to raise a bare TypeError."""
    from mmvlg.datasets import Flickr30kEntitiesDataset
    for span in ([0, float('nan')], ['0', '14']):
        ann = write_ann(tmp_path, [image(0, tokens_positive_eval=[[span]])], [box(0, 0)])
        with pytest.raises(AnnotationError, match=r'ann\.json: caption 0 \(a\.png\): tokens_positive_eval entry'):
            Flickr30kEntitiesDataset(data_root=str(tmp_path), ann_file=ann, data_prefix=dict(img='imgs/'),
                                     pipeline=[])


# ------------------------------------------------------------------------------- item 9: real vs annotated size
@pytest.mark.parametrize('size', [(128, 96), (1, 1)])
def test_item9_image_size_differs_from_annotation_at_start_up(tmp_path, size):
    """Issue 13 item 9: a 128x96 or 1x1 image under a 64x64 annotation trained on misplaced boxes silently; with
    check_images (the default) start-up reads the header and raises naming the file and the expression."""
    save_image(str(tmp_path / 'imgs' / 'b.png'), *size)
    ann = write_ann(tmp_path, [image(0), image(5, 'b.png', height=64, width=64)],
                    [box(0, 0), box(1, 5, bbox=(0, 0, 10, 10))])
    with pytest.raises(ImageError, match=rf'ann\.json: expression 5 \(b\.png\): image file .*b\.png.* is '
                                         rf'{size[0]}x{size[1]} pixels but the entry\'s width x height is 64x64'):
        refcoco(tmp_path, ann)
    with pytest.warns(UserWarning, match=r'skipped 1 invalid expression\(s\).*expression 5'):
        assert ids(refcoco(tmp_path, ann, skip_invalid=True)) == [0]


def test_item9_image_size_differs_from_annotation_at_load_time(tmp_path):
    """Issue 13 item 9: without the start-up check, the loading transform compares the decoded array with the
    annotated size."""
    save_image(str(tmp_path / 'imgs' / 'b.png'), 128, 96)
    ann = write_ann(tmp_path, [image(5, 'b.png', height=64, width=64)], [box(1, 5, bbox=(0, 0, 10, 10))])
    ds = refcoco(tmp_path, ann, check_images=False, pipeline=PIPELINE)
    with pytest.raises(ImageError, match=r'ann\.json: expression 5 \(b\.png\): image file .* is 128x96 pixels but '
                                         r'the entry\'s width x height is 64x64'):
        ds[0]


def test_item9_caption_entry_size_is_checked(tmp_path):
    """Issue 13 item 9: image-caption entries that give height/width are checked too."""
    save_image(str(tmp_path / 'imgs' / 'a.png'), 16, 12)
    (tmp_path / 'c.json').write_text(json.dumps(dict(images=[dict(id=1, file_name='a.png', height=64, width=64)],
                                                     annotations=[dict(id=3, image_id=1, caption='a cat')])))
    with pytest.raises(ImageError, match=r'c\.json: annotation 3: image file .* is 16x12 pixels'):
        CaptionDataset(data_root=str(tmp_path), ann_file='c.json', data_prefix=dict(img='imgs/'))
    ds = CaptionDataset(data_root=str(tmp_path), ann_file='c.json', data_prefix=dict(img='imgs/'),
                        check_images=False, pipeline=[dict(type='LoadImageFromFile')])
    with pytest.raises(ImageError, match=r'c\.json: caption 3 \(image 1\): image file .* is 16x12 pixels'):
        ds[0]


# ---------------------------------------------------------------------------------------- item 10: corrupt images
BROKEN = {
    'text.jpg': b'this is not a JPEG but a text file\n',
    'empty.jpg': b'',
    'cut_header.png': encoded(16, 12, 'PNG')[:20],
}


@pytest.mark.parametrize('name', sorted(BROKEN))
def test_item10_unreadable_image_found_at_start_up(tmp_path, name):
    """Issue 13 item 10: a text file named .jpg, a zero-byte file or a cut header failed only at load time with
    a bare AssertionError/cv2.error; start-up (check_images) names the file and the expression, and
    skip_invalid skips it with a count."""
    (tmp_path / 'imgs').mkdir()
    (tmp_path / 'imgs' / name).write_bytes(BROKEN[name])
    ann = write_ann(tmp_path, [image(0), image(6, name)], [box(0, 0), box(1, 6)])
    with pytest.raises(ImageError, match=rf'ann\.json: expression 6 \({name}\): image file .*{name}.* is not a '
                                         'readable image'):
        refcoco(tmp_path, ann)
    with pytest.warns(UserWarning, match=r'skipped 1 invalid expression\(s\).*expression 6'):
        assert ids(refcoco(tmp_path, ann, skip_invalid=True)) == [0]


@pytest.mark.parametrize('name', sorted(BROKEN))
def test_item10_unreadable_image_at_load_time_names_file_and_id(tmp_path, name):
    """Issue 13 item 10: found at load time (check_images=False), the error names the file and the expression
    id instead of mmcv's bare AssertionError or cv2.error."""
    (tmp_path / 'imgs').mkdir()
    (tmp_path / 'imgs' / name).write_bytes(BROKEN[name])
    ann = write_ann(tmp_path, [image(6, name)], [box(1, 6)])
    ds = refcoco(tmp_path, ann, check_images=False, pipeline=PIPELINE)
    with pytest.raises(ImageError, match=rf'ann\.json: expression 6 \({name}\): image file .*{name}.* cannot be '
                                         'decoded'):
        ds[0]


@pytest.mark.parametrize('fmt,ext', [('PNG', 'png'), ('JPEG', 'jpg')])
def test_item10_truncated_image_passes_the_header_check_and_fails_at_load_naming_file_and_id(tmp_path, fmt, ext):
    """Issue 13 item 10: a truncated PNG/JPEG (intact header, cut body) is found when loaded; the error names the
    file and the expression id."""
    (tmp_path / 'imgs').mkdir()
    data = encoded(64, 48, fmt)
    (tmp_path / 'imgs' / f'cut.{ext}').write_bytes(data[:len(data) // 3])
    ann = write_ann(tmp_path, [image(8, f'cut.{ext}', height=48, width=64)], [box(1, 8)])
    ds = refcoco(tmp_path, ann, pipeline=PIPELINE)  # the header is fine: start-up passes
    with pytest.raises(ImageError, match=rf'ann\.json: expression 8 \(cut\.{ext}\): image file .*cut\.{ext}.* '
                                         'cannot be decoded'):
        ds[0]


def test_item10_missing_image_is_skipped_under_skip_invalid(tmp_path):
    """Issue 13 item 10: skip_invalid=True skipped neither missing nor corrupt images although the README says
    so; a missing image is now skipped and counted (and still a FileNotFoundError naming it otherwise)."""
    ann = write_ann(tmp_path, [image(0), image(7, 'gone.png')], [box(0, 0), box(1, 7)], make_images=False)
    save_image(str(tmp_path / 'imgs' / 'a.png'))
    with pytest.raises(FileNotFoundError, match=r'ann\.json: expression 7 \(gone\.png\): image file .*gone\.png'):
        refcoco(tmp_path, ann)
    with pytest.warns(UserWarning, match=r'skipped 1 invalid expression\(s\).*expression 7 .*does not exist'):
        assert ids(refcoco(tmp_path, ann, skip_invalid=True)) == [0]
    ds = refcoco(tmp_path, ann, check_images=False, pipeline=PIPELINE)
    with pytest.raises(FileNotFoundError, match=r'ann\.json: expression 7 \(gone\.png\): image file .*gone\.png'):
        ds[1]


def test_item10_captions_and_vqa_name_the_entry_of_a_corrupt_image(tmp_path):
    """Issue 13 item 10: the image-caption and VQA data sets check their images the same way."""
    (tmp_path / 'imgs').mkdir()
    save_image(str(tmp_path / 'imgs' / 'a.png'))
    (tmp_path / 'imgs' / 'bad.png').write_bytes(b'')
    (tmp_path / 'c.jsonl').write_text('{"image": "a.png", "caption": "a"}\n{"image": "bad.png", "caption": "b"}\n')
    with pytest.raises(ImageError, match=r'c\.jsonl, line 2: image file .*bad\.png.* is not a readable image'):
        CaptionDataset(data_root=str(tmp_path), ann_file='c.jsonl', data_prefix=dict(img='imgs/'))
    with pytest.warns(UserWarning, match=r'skipped 1 invalid caption\(s\)'):
        assert len(CaptionDataset(data_root=str(tmp_path), ann_file='c.jsonl', data_prefix=dict(img='imgs/'),
                                  skip_invalid=True)) == 1
    questions = [dict(question_id=10, image_id=1, question='Is it red?'),
                 dict(question_id=20, image_id=2, question='Is it blue?')]
    (tmp_path / 'q.json').write_text(json.dumps(dict(data_subtype='x', questions=questions)))
    kwargs = dict(data_root=str(tmp_path), ann_file='q.json', data_prefix=dict(img='imgs/'), test_mode=True,
                  img_template='{image_id}.png')
    save_image(str(tmp_path / 'imgs' / '1.png'))
    (tmp_path / 'imgs' / '2.png').write_bytes(b'not an image')
    with pytest.raises(ImageError, match=r'q\.json: question 20: image file .*2\.png.* is not a readable image'):
        VQAv2Dataset(**kwargs)
    with pytest.warns(UserWarning, match=r'skipped 1 invalid question\(s\)'):
        assert len(VQAv2Dataset(skip_invalid=True, **kwargs)) == 1
    ds = VQAv2Dataset(check_images=False, pipeline=[dict(type='LoadImageFromFile')], **kwargs)
    with pytest.raises(ImageError, match=r'q\.json: question 20 \(image 2\): image file .*2\.png.* cannot be '
                                         'decoded'):
        ds[1]


# ------------------------------------------------------------------------------ item 11: captions past max_length
WORD_ENCODER = dict(type='HFTextEncoder', max_length=6, tokenizer=dict(type='word', vocab='synthref'),
                    model_config=dict(model_type='bert', hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32))


def test_item11_referred_words_cut_away_are_an_error_or_skipped(tmp_path):
    """Issue 13 item 11: a caption longer than the tokenizer's max_length was cut silently even when the referred
    phrase lay past the cut; with the model's text encoder config the data set raises (or skips) for it."""
    # 6 tokens = [CLS] + 4 words + [SEP]: "the red circle left" survives, "the big green diamond" does not
    ann = write_ann(tmp_path, [image(0), image(1)], [box(0, 0, spans=((0, 14), )), box(1, 1, spans=((23, 44), ))])
    with pytest.raises(AnnotationError, match=r"ann\.json: expression 1 \(a\.png\): the caption is longer than the "
                                              r"text encoder's max_length=6 tokens and the referred words 'the big "
                                              r"green diamond' \(characters 23-44\) lie past the cut"), \
            pytest.warns(UserWarning, match='2 of 2 text'):
        refcoco(tmp_path, ann, text_encoder=WORD_ENCODER)
    with pytest.warns(UserWarning) as record:
        ds = refcoco(tmp_path, ann, text_encoder=WORD_ENCODER, skip_invalid=True)
    assert ids(ds) == [0]
    messages = [str(w.message) for w in record]
    assert any(r"2 of 2 text(s) are longer than the text encoder's max_length=6" in m for m in messages)
    assert any('skipped 1 invalid expression(s)' in m and 'expression 1' in m for m in messages)
    # long enough: no warning, nothing skipped
    assert ids(refcoco(tmp_path, ann, text_encoder=dict(WORD_ENCODER, max_length=31))) == [0, 1]


def test_item11_truncated_captions_are_counted_for_image_text_sets(tmp_path):
    """Issue 13 item 11: captions without referred spans (image-caption pairs) get the count in a warning."""
    save_image(str(tmp_path / 'imgs' / 'a.png'))
    (tmp_path / 'c.jsonl').write_text(json.dumps(dict(image='a.png', caption=[CAPTION, 'the red circle'])))
    with pytest.warns(UserWarning, match=r"c\.jsonl: 1 of 2 text\(s\) are longer than the text encoder's "
                                         r"max_length=6 tokens"):
        CaptionDataset(data_root=str(tmp_path), ann_file='c.jsonl', data_prefix=dict(img='imgs/'),
                       text_encoder=WORD_ENCODER)


def test_item11_text_encoder_warns_once_when_it_truncates():
    """Issue 13 item 11: the text encoder itself no longer truncates silently (one warning with a count)."""
    from mmvlg.registry import MODELS
    encoder = MODELS.build(WORD_ENCODER)
    with pytest.warns(UserWarning, match=r'HFTextEncoder: 1 of 2 texts of a batch are longer than max_length=6'):
        encoder.tokenize([CAPTION, 'the red circle'])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        encoder.tokenize([CAPTION])  # once is enough
    assert not [w for w in record if 'HFTextEncoder' in str(w.message)]


# -------------------------------------------------------------------------- item 12: degenerate and huge images
def test_item12_one_pixel_wide_image_survives_a_flip(tmp_path):
    """Issue 13 item 12: a 1-pixel-wide image crashed training when flipped (At least one stride ... is
    negative, no file name)."""
    save_image(str(tmp_path / 'imgs' / 'thin.png'), 1, 12)
    ann = write_ann(tmp_path, [image(0, 'thin.png', caption='the left circle', width=1)],
                    [box(0, 0, bbox=(0, 2, 1, 4), spans=((0, 15), ))])
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadGroundingAnnotations'),
                dict(type='GroundingRandomFlip', prob=1.0), dict(type='PackGroundingInputs')]
    out = refcoco(tmp_path, ann, pipeline=pipeline)[0]
    assert tuple(out['inputs'].shape) == (3, 12, 1)
    assert out['data_samples'].text == 'the right circle'


def test_item12_image_larger_than_max_image_size(tmp_path):
    """Issue 13 item 12: a huge image in a pipeline without a resize ran out of memory after a minute; a
    configurable max_image_size (default 8192 on a side) stops it at start-up, or at load, naming the file."""
    save_image(str(tmp_path / 'imgs' / 'big.png'), 100, 80)
    ann = write_ann(tmp_path, [image(0), image(2, 'big.png', height=80, width=100)], [box(0, 0), box(1, 2)])
    with pytest.raises(ImageError, match=r'ann\.json: expression 2 \(big\.png\): image file .*big\.png.* is 100x80 '
                                         r'pixels, more than max_image_size=64'):
        refcoco(tmp_path, ann, max_image_size=64)
    with pytest.warns(UserWarning, match='skipped 1 invalid'):
        assert ids(refcoco(tmp_path, ann, max_image_size=64, skip_invalid=True)) == [0]
    ds = refcoco(tmp_path, ann, max_image_size=64, check_images=False, pipeline=PIPELINE)
    assert ds[0]['inputs'].shape[1:] == (12, 16)
    with pytest.raises(ImageError, match=r'expression 2 \(big\.png\): image file .* more than max_image_size=64'):
        ds[1]
    assert len(refcoco(tmp_path, ann, max_image_size=None)) == 2
    with pytest.raises(ValueError, match='max_image_size'):
        refcoco(tmp_path, ann, max_image_size=0)


def test_item12_default_limit_applies_from_the_header(tmp_path):
    """Issue 13 item 12: the default limit is checked from the header only (a 1-row image wider than the limit
    is a tiny file)."""
    width = DEFAULT_MAX_IMAGE_SIZE + 1
    save_image(str(tmp_path / 'imgs' / 'wide.png'), width, 1)
    ann = write_ann(tmp_path, [image(3, 'wide.png', height=1, width=width)], [box(0, 3, bbox=(0, 0, 5, 1))])
    with pytest.raises(ImageError, match=rf'expression 3 \(wide\.png\): .* is {width}x1 pixels, more than '
                                         rf'max_image_size={DEFAULT_MAX_IMAGE_SIZE}'):
        refcoco(tmp_path, ann)


# ------------------------------------------------------------------------------------- item 13: malformed fields
MALFORMED = [
    ('bbox null', [image(4)], [box(9, 4, bbox=None)],
     r'ann\.json: expression 4 \(a\.png\): annotation 9 has no "bbox" of 4 numbers'),
    ('bbox strings', [image(4)], [box(9, 4, bbox=['1', '2', '5', '4'])],
     r'ann\.json: expression 4 \(a\.png\): annotation 9 has no "bbox" of 4 numbers'),
    ('bbox a string', [image(4)], [box(9, 4, bbox='1,2,5,4')],
     r'ann\.json: expression 4 \(a\.png\): annotation 9 has no "bbox" of 4 numbers'),
    ('spans as strings', [image(4)], [box(9, 4, spans=[['0', '5']])],
     r'ann\.json: expression 4 \(a\.png\): annotation 9: tokens_positive span \[\'0\', \'5\'\] is not two integer'),
    ('spans a string', [image(4)], [box(9, 4, spans='0-5')],
     r'ann\.json: expression 4 \(a\.png\): annotation 9: tokens_positive must be a list of \[start, end\] spans'),
    ('images entry not a dict', [image(0), ['a.png', 12, 16]], [box(0, 0)],
     r'ann\.json: images entry 1 is not an object'),
    ('images entry a string', ['a.png'], [],
     r'ann\.json: images entry 0 is not an object'),
    ('annotations entry not a dict', [image(0)], [box(0, 0), 'a box'],
     r'ann\.json: annotations entry 1 is not an object'),
    ('empty images', [], [],
     r'ann\.json: the "images" list is empty'),
    ('duplicate annotation ids', [image(0), image(1)], [box(5, 0), box(5, 1)],
     r'ann\.json: annotation 5: the id 5 appears twice'),
]


@pytest.mark.parametrize('case,images,annotations,match', MALFORMED, ids=[m[0] for m in MALFORMED])
def test_item13_malformed_fields_name_file_and_id(tmp_path, case, images, annotations, match):
    """Issue 13 item 13: malformed fields raised bare Python errors (or were accepted); each is an
    AnnotationError naming the file and the id."""
    if not any(isinstance(i, dict) for i in images):
        save_image(str(tmp_path / 'imgs' / 'a.png'))
    ann = write_ann(tmp_path, images, annotations)
    with pytest.raises(AnnotationError, match=match):
        refcoco(tmp_path, ann)


def test_item13_expression_without_box_is_an_error_at_test_time(tmp_path):
    """Issue 13 item 13: an expression with no box was silently a miss at test time."""
    ann = write_ann(tmp_path, [image(0), image(1)], [box(0, 0)])
    for test_mode in (False, True):
        with pytest.raises(AnnotationError, match=r'ann\.json: expression 1 \(a\.png\) has no referred box'):
            refcoco(tmp_path, ann, test_mode=test_mode)
    with pytest.warns(UserWarning, match='skipped 1 invalid'):
        assert ids(refcoco(tmp_path, ann, test_mode=True, skip_invalid=True)) == [0]


def test_item13_caption_duplicate_annotation_ids_and_bad_sizes(tmp_path):
    """Issue 13 item 13: the image-caption data set rejects duplicate annotation ids and non-integer sizes with
    the file and the id."""
    save_image(str(tmp_path / 'imgs' / 'a.png'))

    def build(images, annotations):
        (tmp_path / 'c.json').write_text(json.dumps(dict(images=images, annotations=annotations)))
        return CaptionDataset(data_root=str(tmp_path), ann_file='c.json', data_prefix=dict(img='imgs/'))

    img = dict(id=1, file_name='a.png')
    with pytest.raises(AnnotationError, match=r'c\.json: annotation 3: the id 3 appears twice'):
        build([img], [dict(id=3, image_id=1, caption='a'), dict(id=3, image_id=1, caption='b')])
    with pytest.raises(AnnotationError, match=r'c\.json: annotation 3 \(a\.png\) has a non-integer image size'):
        build([dict(img, height='tall', width=16)], [dict(id=3, image_id=1, caption='a')])
    with pytest.raises(AnnotationError, match=r'c\.json: the "images" list is empty'):
        build([], [])
