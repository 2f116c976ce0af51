"""Text edits that keep character spans (``tokens_positive``) pointing at the same words."""
import re
from typing import Dict, List, Sequence, Tuple

Span = Sequence[int]

LEFT_RIGHT = {'left': 'right', 'right': 'left'}


def replace_words_keep_spans(text: str, spans: Sequence[Sequence[Span]], mapping: Dict[str, str]
                             ) -> Tuple[str, List[List[List[int]]]]:
    """Replace every occurrence of the keys of ``mapping`` in ``text`` at once (so ``left``<->``right``
    swap) and move the character spans along with the text.

    Matching is by substring, as in MDETR, so ``leftmost`` becomes ``rightmost``; it is case-sensitive.

    Args:
        text (str): The caption.
        spans: For each instance, a list of [start, end) character spans of ``text``.
        mapping (dict): Substring replacements.

    Returns:
        tuple: The new text and the spans moved to it. A span boundary inside a replaced substring moves
        to the corresponding end of the replacement.
    """
    if not mapping:
        return text, [[list(s) for s in inst] for inst in spans]
    pattern = re.compile('|'.join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)))
    pieces, edits = [], []  # edits: (old_start, old_end, new_start, new_end)
    last, shift = 0, 0
    for m in pattern.finditer(text):
        new = mapping[m.group(0)]
        pieces.append(text[last:m.start()])
        pieces.append(new)
        edits.append((m.start(), m.end(), m.start() + shift, m.start() + shift + len(new)))
        shift += len(new) - (m.end() - m.start())
        last = m.end()
    pieces.append(text[last:])

    def move(pos: int, is_end: bool) -> int:
        delta = 0
        for os_, oe, ns, ne in edits:
            if pos >= oe:
                delta = ne - oe
            elif pos > os_:  # inside a replaced substring
                return ne if is_end else ns
            else:
                break
        return pos + delta

    new_spans = [[[move(s, False), move(e, True)] for s, e in inst] for inst in spans]
    return ''.join(pieces), new_spans
