"""Context mode: the selected sequences put before the text instead of training on them."""

from __future__ import annotations

from collections.abc import Sequence


def fit_context(
    sequences: Sequence[Sequence[int]], room: int, prefix_id: int
) -> tuple[list[int], list[int]]:
    """The tokens to put before the text (at most ``room``), and which of ``sequences``
    they hold.

    Each sequence is placed as ``[prefix_id] + tokens`` (the prefix token separates
    documents, as before the text itself), in selection order, the first selected
    nearest to the text. Whole sequences are placed while they fit; the first one that
    does not fit is cut to the room left (its beginning is kept) and the filling stops.
    With retrieved chunks as long as the window, the context is thus the beginning of the
    first selected chunk, or several whole short ones.
    """
    if room < 0:
        raise ValueError(f"room must be >= 0 tokens, got {room}")
    pieces: list[list[int]] = []
    placed: list[int] = []
    left = room
    for position, tokens in enumerate(sequences):
        if left < 2:  # the prefix and at least one token
            break
        piece = [prefix_id, *tokens][:left]
        pieces.append(piece)
        placed.append(position)
        left -= len(piece)
        if len(piece) <= len(tokens):  # cut: nothing after it
            break
    context = [token for piece in reversed(pieces) for token in piece]
    return context, placed
