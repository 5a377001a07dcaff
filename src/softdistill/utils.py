"""Small helpers shared by every layer (no torch-specific logic)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` other than ``name`` itself
    (suggesting the word that was typed helps nobody), or ``""``."""
    others = [str(c) for c in choices if str(c) != str(name)]
    close = difflib.get_close_matches(str(name), others, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
