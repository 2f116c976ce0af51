"""Build the VQA v2 answer vocabulary of ViLT/METER/FIBER from annotation files.

The normalized ``multiple_choice_answer`` of every question (normalized as the VQA accuracy normalizes answers,
:func:`mmvlg.evaluation.metrics.vqa_metric.normalize_answer`), kept when it occurs at least ``--min-count`` times
(9: 3129 answers for train2014 + val2014), most frequent first; written as a JSON list, the ``answers`` of
``VQAHead`` and the ``answer_list`` of ``VQAv2Dataset``.

Usage::

    python tools/dataset_converters/vqav2_answer_list.py data/vqav2/v2_mscoco_train2014_annotations.json \\
        data/vqav2/v2_mscoco_val2014_annotations.json --out data/vqav2/answer_list.json
"""
import argparse
import json
import os
import os.path as osp

from mmvlg.datasets.vqa import build_answer_list


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Build the VQA v2 answer vocabulary')
    parser.add_argument('annotations', nargs='+', help='VQA v2 annotation files (v2_mscoco_*_annotations.json)')
    parser.add_argument('--out', required=True, help='output JSON list')
    parser.add_argument('--min-count', type=int, default=9, help='keep answers seen at least this often')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    answers = build_answer_list(args.annotations, min_count=args.min_count)
    if not answers:
        raise SystemExit(f'no answer occurs {args.min_count} times or more in {args.annotations}')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(answers, f)
    print(f'{len(answers)} answers written to {args.out}')


if __name__ == '__main__':
    main()
