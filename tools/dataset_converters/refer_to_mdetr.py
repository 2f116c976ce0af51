"""Convert the original REFER release (RefCOCO, RefCOCO+, RefCOCOg) to MDETR's annotation files.

Input (https://github.com/lichengunc/refer), e.g. ``data/refer/refcoco/``:

* ``refs(unc).p`` (or ``refs(umd).p``, ``refs(google).p``): a pickled list of refs, each a dict with
  ``ref_id``, ``ann_id``, ``image_id``, ``split`` (``train``, ``val``, ``testA``, ``testB`` or ``test``),
  ``category_id``, ``file_name`` (``COCO_train2014_000000581857_16.jpg``) and ``sentences`` (dicts with
  ``sent``, ``raw``, ``tokens``, ``sent_id``);
* ``instances.json``: the COCO subset with the ``images`` and the ``annotations`` (``bbox`` as x, y, w, h).

Output: ``{out_dir}/finetune_{dataset}_{split}.json`` per split, in MDETR's format (one ``images`` entry
and one annotation per sentence; see :mod:`mmvlg.datasets.refexp`), read by ``RefCOCODataset`` and friends.
The expression ids run on across the splits (in the order train, val, testA, testB, test), as in MDETR's
files. MDETR's own files also carry parser-derived ``tokens_positive`` (the head noun phrase); here the
whole sentence is the positive span.

The pickle is read with an unpickler that accepts plain data only (lists, dicts, strings, numbers), so a
tampered file cannot run code.

Usage::

    python tools/dataset_converters/refer_to_mdetr.py --refer-dir data/refer/refcoco --dataset refcoco \\
        --split-by unc --out-dir data/mdetr_annotations
"""
import argparse
import io
import json
import os
import os.path as osp
import pickle
import sys
from typing import Any, Dict, List, Optional, Sequence

SPLIT_ORDER = ('train', 'val', 'testA', 'testB', 'test')
DATASETS = ('refcoco', 'refcoco+', 'refcocog')


class ConversionError(ValueError):
    """The REFER input is missing, unreadable or inconsistent; the message names the file and the entry."""


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global: REFER pickles hold only lists, dicts, strings and numbers,
    which need none."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f'refusing to load the global {module}.{name}: a REFER refs file holds '
                                     'plain data (lists, dicts, strings, numbers) only')


def load_refs(path: str) -> List[dict]:
    """Read a REFER ``refs(*).p`` pickle safely and check its structure.

    Args:
        path (str): The pickle file.

    Returns:
        list[dict]: The refs.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ConversionError: If the file is not a plain-data pickle of a list of refs.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'REFER refs file {path!r} does not exist')
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        # Python 2 ``str`` objects are decoded as UTF-8 (a superset of the ASCII default).
        refs = _PlainDataUnpickler(io.BytesIO(raw), encoding='utf-8').load()
    except Exception as err:  # pickle raises many types on corrupt input
        raise ConversionError(f'{path}: not a readable REFER refs pickle ({type(err).__name__}: {err})') from err
    if not isinstance(refs, list):
        raise ConversionError(f'{path}: expected a list of refs, got {type(refs).__name__}')
    required = ('ref_id', 'ann_id', 'image_id', 'split', 'sentences')
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict):
            raise ConversionError(f'{path}: ref #{i} is a {type(ref).__name__}, not a dict')
        missing = [k for k in required if k not in ref]
        if missing:
            raise ConversionError(f'{path}: ref {ref.get("ref_id", f"#{i}")} has no {", ".join(missing)}')
    return refs


def load_instances(path: str) -> dict:
    """Read REFER's ``instances.json`` (COCO format) and check its top-level structure."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'COCO instances file {path!r} does not exist')
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConversionError(f'{path}: not a valid JSON file ({err})') from err
    if not isinstance(data, dict) or not isinstance(data.get('images'), list) \
            or not isinstance(data.get('annotations'), list):
        raise ConversionError(f'{path}: expected a COCO JSON object with "images" and "annotations" lists')
    return data


def convert_refs(refs: Sequence[dict], instances: dict, dataset: str, refs_file: str = '<refs>',
                 instances_file: str = '<instances>') -> Dict[str, dict]:
    """Build MDETR's annotation dicts, one per split present in ``refs``.

    Args:
        refs (Sequence[dict]): REFER refs (see :func:`load_refs`).
        instances (dict): The COCO ``instances.json`` content.
        dataset (str): Data set name written to ``dataset_name`` (``refcoco``, ``refcoco+``, ``refcocog``).
        refs_file (str): Name of the refs file, for error messages.
        instances_file (str): Name of the instances file, for error messages.

    Returns:
        dict: split -> ``{'images', 'annotations', 'categories', 'info', 'licenses'}``. Sentences that are
        empty (after stripping spaces) are left out; their count per split is in the ``'skipped_empty'`` entry
        of each dict's ``info``.

    Raises:
        ConversionError: If a ref's annotation or image is missing from ``instances``, or a ref is malformed.
    """
    anns = {a['id']: a for a in instances['annotations']}
    imgs = {im['id']: im for im in instances['images']}
    splits = sorted({r['split'] for r in refs}, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER
                                                               else len(SPLIT_ORDER), s))
    out, next_id = {}, 0
    for split in splits:
        images, annotations, skipped = [], [], 0
        for ref in (r for r in refs if r['split'] == split):
            where = f'ref_id {ref["ref_id"]} of {refs_file}'
            ann = anns.get(ref['ann_id'])
            if ann is None:
                raise ConversionError(f'{where}: its ann_id {ref["ann_id"]} is not in {instances_file}')
            img = imgs.get(ref['image_id'])
            if img is None:
                raise ConversionError(f'{where}: its image_id {ref["image_id"]} is not in {instances_file}')
            if ann.get('image_id', ref['image_id']) != ref['image_id']:
                raise ConversionError(f'{where}: annotation {ref["ann_id"]} belongs to image {ann["image_id"]} in '
                                      f'{instances_file}, not to the ref\'s image {ref["image_id"]}')
            box = ann.get('bbox')
            if not isinstance(box, list) or len(box) != 4:
                raise ConversionError(f'{where}: annotation {ref["ann_id"]} of {instances_file} has no 4-number bbox')
            category_id = ref.get('category_id', ann.get('category_id'))
            for sent in ref['sentences']:
                caption = sent.get('sent') if isinstance(sent, dict) else None
                if not isinstance(caption, str):
                    raise ConversionError(f'{where}: sentence {sent!r} has no "sent" string')
                if not caption.strip():
                    skipped += 1
                    continue
                images.append(dict(
                    id=next_id, file_name=img['file_name'], height=img['height'], width=img['width'],
                    caption=caption, original_id=ref['image_id'], dataset_name=dataset, ref_id=ref['ref_id'],
                    sent_id=sent.get('sent_id'), tokens_positive_eval=[[[0, len(caption)]]]))
                annotations.append(dict(
                    id=next_id, image_id=next_id, bbox=[float(v) for v in box],
                    area=float(ann.get('area', box[2] * box[3])), category_id=category_id, iscrowd=0,
                    original_id=ref['ann_id'], tokens_positive=[[0, len(caption)]]))
                next_id += 1
        info = dict(instances['info']) if isinstance(instances.get('info'), dict) else {}
        info.update(description=f'{dataset} {split} converted from {osp.basename(refs_file)}',
                    skipped_empty=skipped)
        out[split] = dict(info=info, licenses=instances.get('licenses', []), images=images,
                          annotations=annotations, categories=instances.get('categories', []))
    return out


def convert(refer_dir: str, dataset: str, split_by: str, out_dir: str) -> Dict[str, dict]:
    """Convert ``{refer_dir}/refs({split_by}).p`` + ``instances.json`` and write the MDETR files.

    Args:
        refer_dir (str): Folder with the refs pickle and ``instances.json``.
        dataset (str): ``refcoco``, ``refcoco+`` or ``refcocog`` (the output files' name).
        split_by (str): The refs file's split name: ``unc``, ``umd`` or ``google``.
        out_dir (str): Output folder (created if needed).

    Returns:
        dict: split -> summary dict with ``path`` (the written file), ``expressions``, ``refs`` and
        ``skipped_empty`` (empty sentences left out).
    """
    refs_file = osp.join(refer_dir, f'refs({split_by}).p')
    instances_file = osp.join(refer_dir, 'instances.json')
    refs = load_refs(refs_file)
    instances = load_instances(instances_file)
    converted = convert_refs(refs, instances, dataset, refs_file, instances_file)
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for split, data in converted.items():
        path = osp.join(out_dir, f'finetune_{dataset}_{split}.json')
        tmp = path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(data, f)
        os.replace(tmp, path)
        written[split] = dict(path=path, expressions=len(data['images']),
                              refs=len({im['ref_id'] for im in data['images']}),
                              skipped_empty=data['info']['skipped_empty'])
    return written


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Convert REFER refs to MDETR finetune_{dataset}_{split}.json')
    parser.add_argument('--refer-dir', required=True, help='folder with refs(<split-by>).p and instances.json')
    parser.add_argument('--dataset', required=True, choices=DATASETS)
    parser.add_argument('--split-by', required=True, help='unc (RefCOCO, RefCOCO+), umd or google (RefCOCOg)')
    parser.add_argument('--out-dir', required=True, help='where to write the JSON files')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        written = convert(args.refer_dir, args.dataset, args.split_by, args.out_dir)
    except (FileNotFoundError, ConversionError) as err:
        print(f'refer_to_mdetr: error: {err}', file=sys.stderr)
        return 1
    for split, summary in written.items():
        skipped = summary['skipped_empty']
        print(f'{split:>6}: {summary["expressions"]:7d} expressions of {summary["refs"]:6d} refs -> '
              f'{summary["path"]}' + (f' ({skipped} empty sentences left out)' if skipped else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
