"""Context mode: the selected sequences put before the text instead of training on them."""

from __future__ import annotations

from collections.abc import Sequence


def fit_context(
    sequences: Sequence[Sequence[int]], room: int, prefix_id: int
) -> tuple[list[int], list[int]]:
    """The tokens to put before the text, and which of ``sequences`` they hold.

    Each sequence is placed whole as ``[prefix_id] + tokens`` (the prefix token separates
    documents, as before the text itself). Sequences are taken in selection order while
    they fit in ``room`` tokens (one that does not fit is skipped, a later shorter one may
    still fit); the first selected is placed nearest to the text. The text has priority:
    the caller gives as ``room`` what the text leaves of the window.
    """
    placed: list[int] = []
    used = 0
    for position, tokens in enumerate(sequences):
        if used + len(tokens) + 1 <= room:
            placed.append(position)
            used += len(tokens) + 1
    context: list[int] = []
    for position in reversed(placed):
        context += [prefix_id, *sequences[position]]
    return context, placed
