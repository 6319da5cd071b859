"""Counts in words: "1 file", "2 files", "0.5 minutes"."""

from __future__ import annotations


def counted(count: float, noun: str) -> str:
    """``count`` and ``noun``, the noun plural unless the count is one (floats as ``:g``)."""
    shown = f"{count:g}" if isinstance(count, float) else str(count)
    ending = "es" if noun.endswith(("s", "sh", "ch", "x")) else "s"
    return f"{shown} {noun}{'' if count == 1 else ending}"
