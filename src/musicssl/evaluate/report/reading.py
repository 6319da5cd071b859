"""Reading results dicts (the ``results.json`` format) for tables, figures and comparisons.

Scores are (mean, std) over seeds; two scores are "within noise" of each other when they differ
by at most twice the std of their difference, and tables mark the best score of a column and
those within noise of it, so a reader does not take a 0.01 gap between noisy runs for a win.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LOWER_IS_BETTER = frozenset({"mae"})  # every other metric: higher is better
BEST_MARK = "^"
NEAR_MARK = "≈"
MISSING = "—"


def format_score(mean: float, std: float) -> str:
    """``mean ± std`` with three decimals, or one for large values (an error in BPM)."""
    if abs(mean) >= 100:
        return f"{mean:.1f} ± {std:.1f}"
    return f"{mean:.3f} ± {std:.3f}"


def within_noise(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two (mean, std) scores differ by at most twice the std of their difference."""
    return abs(a[0] - b[0]) <= 2 * math.sqrt(a[1] ** 2 + b[1] ** 2)


def noise_marks(
    scores: Sequence[tuple[float, float] | None], *, lower_is_better: bool = False
) -> list[str]:
    """Marks for a column of (mean, std) scores: ``BEST_MARK``, ``NEAR_MARK`` or "".

    A column with fewer than two scores has no best to speak of and gets no marks.
    """
    present = [(index, score) for index, score in enumerate(scores) if score is not None]
    marks = [""] * len(scores)
    if len(present) < 2:
        return marks
    sign = -1 if lower_is_better else 1
    best_index, best = max(present, key=lambda item: sign * item[1][0])
    for index, score in present:
        if index == best_index:
            marks[index] = BEST_MARK
        elif within_noise(score, best):
            marks[index] = NEAR_MARK
    return marks


def headline(task: Mapping[str, Any]) -> tuple[str, tuple[float, float]] | None:
    """A task result's headline metric name and its (mean, std), or None when absent."""
    name = task.get("main")
    metric = task.get("metrics", {}).get(name) if name else None
    if not metric or metric.get("mean") is None:
        return None
    return str(name), (float(metric["mean"]), float(metric.get("std") or 0.0))


@dataclass
class System:
    """One evaluated system (the source or a baseline) and its results dict."""

    label: str  # short, for table headers and legends
    results: dict[str, Any]


# ----------------------------------------------------------------------------- reading results


def task_names(systems: Sequence[System]) -> list[str]:
    """Every task any system has, in first-seen order."""
    names: dict[str, None] = {}
    for system in systems:
        names.update(dict.fromkeys(system.results["tasks"]))
    return list(names)


def first_task(systems: Sequence[System], name: str) -> dict[str, Any]:
    """The result of task ``name`` from the first system that has it; {} when none does."""
    for system in systems:
        if name in system.results["tasks"]:
            return system.results["tasks"][name]
    return {}


def mean_std(task: Mapping[str, Any] | None, metric: str) -> tuple[float, float] | None:
    """A task result's (mean, std) of ``metric``, or None when it has no such score."""
    value = (task or {}).get("metrics", {}).get(metric)
    if not value or value.get("mean") is None:
        return None
    return float(value["mean"]), float(value.get("std") or 0.0)


def metric_label(metric: str) -> str:
    """The metric's name, saying so when lower is better."""
    return f"{metric} (lower is better)" if metric in LOWER_IS_BETTER else metric


def layer_number(text: str) -> int:
    """A ``by_layer`` key as a number to sort by; one that is not a number sorts last."""
    try:
        return int(text)
    except ValueError:
        return 1 << 30
