"""The answer vocabulary of a VQA model and data set (one loader for both, outside the models and datasets
packages so that each can use it)."""
import json
import os.path as osp
from typing import List, Sequence, Union


def load_answer_list(answers: Union[str, Sequence[str]], unique: bool = True) -> List[str]:
    """An answer vocabulary given as a list of answers or a file: a JSON list, or one answer a line (blank lines
    skipped; the format :func:`mmvlg.datasets.build_answer_list`'s tool writes).

    Args:
        answers (list[str] | str): The answers, or the path of a file holding them.
        unique (bool): Reject repeated answers (a classifier needs one output per answer). Defaults to True;
            a data set that maps answers to their first index may allow them.

    Returns:
        list[str]: The answers, in order (their indices are the classifier's outputs).

    Raises:
        FileNotFoundError: ``answers`` is a path that does not exist.
        ValueError: The file is not a valid JSON list, the vocabulary is empty, holds something else than
            non-empty strings, or (with ``unique``) repeats an answer. The message names the file.
    """
    where = f'answer vocabulary {answers!r}' if isinstance(answers, str) else 'the answer vocabulary'
    if isinstance(answers, str):
        if not osp.isfile(answers):
            raise FileNotFoundError(f'answer vocabulary file {answers!r} does not exist')
        with open(answers, encoding='utf-8') as f:
            text = f.read()
        if text.lstrip().startswith('['):
            try:
                answers = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f'{where}: not a valid JSON list ({err.msg})') from err
        else:
            answers = [ln.strip() for ln in text.splitlines() if ln.strip()]
    answers = list(answers)
    if not answers or not all(isinstance(a, str) and a for a in answers):
        raise ValueError(f'{where}: must be a non-empty list of non-empty strings')
    if unique and len(set(answers)) != len(answers):
        repeated = sorted({a for a in answers if answers.count(a) > 1})[:5]
        raise ValueError(f'{where}: must be a list of distinct answers, repeats {repeated}')
    return answers
