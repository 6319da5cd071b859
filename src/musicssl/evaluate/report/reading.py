"""Reading results dicts (the ``results.json`` format) for tables, figures and comparisons.

Scores are (mean, std) over seeds; two scores are "within noise" of each other when they differ
by at most twice the std of their difference, and tables mark the best score of a column and
those within noise of it, so a reader does not take a 0.01 gap between noisy runs for a win.
Seed ``s`` scores every system of a report on the same resample of the test set, so two scores
with a value for each seed are compared seed by seed (``within_noise``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

LOWER_IS_BETTER = frozenset({"mae"})  # every other metric: higher is better
BEST_MARK = "^"
NEAR_MARK = "≈"
MISSING = "—"


def format_score(mean: float, std: float) -> str:
    """``mean ± std`` with three decimals, or one for large values (an error in BPM)."""
    if abs(mean) >= 100:
        return f"{mean:.1f} ± {std:.1f}"
    return f"{mean:.3f} ± {std:.3f}"


class Score(NamedTuple):
    """A metric over seeds: its mean and std and, when the results hold them, each seed's value
    and the split sizes of the test set they were drawn from."""

    mean: float
    std: float
    values: tuple[float, ...] = ()
    test_set: tuple[tuple[str, int], ...] = ()


def within_noise(a: Score | tuple[float, float], b: Score | tuple[float, float]) -> bool:
    """Whether two scores differ by at most twice the std of their difference.

    Two scores of one test set with a value for each of the same two or more seeds are paired:
    seed ``s`` scored both on the same resample of the test set, so the std is measured on the
    per-seed differences, and what a resample does to both alike cancels (as in a paired
    bootstrap test). Otherwise they count as independent: ``sqrt(std_a² + std_b²)``.
    """
    differences = _paired_differences(a, b)
    if differences is None:
        return abs(a[0] - b[0]) <= 2 * math.sqrt(a[1] ** 2 + b[1] ** 2)
    return abs(float(differences.mean())) <= 2 * float(differences.std(ddof=1)) + 1e-12


def _paired_differences(a: Any, b: Any) -> np.ndarray | None:
    """Per-seed differences ``a - b``, or None when the two cannot be paired."""
    if not (isinstance(a, Score) and isinstance(b, Score)):
        return None
    if len(a.values) < 2 or len(a.values) != len(b.values):
        return None
    if not a.test_set or a.test_set != b.test_set:
        return None
    return np.asarray(a.values, dtype=np.float64) - np.asarray(b.values, dtype=np.float64)


def noise_marks(
    scores: Sequence[Score | tuple[float, float] | None], *, lower_is_better: bool = False
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


def headline(task: Mapping[str, Any]) -> tuple[str, Score] | None:
    """A task result's headline metric name and its score, or None when absent."""
    name = task.get("main")
    score = mean_std(task, str(name)) if name else None
    return None if score is None else (str(name), score)


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


def mean_std(task: Mapping[str, Any] | None, metric: str) -> Score | None:
    """A task result's score of ``metric`` (its seeds' values too, where kept), or None when it
    has no such score."""
    value = (task or {}).get("metrics", {}).get(metric)
    if not value or value.get("mean") is None:
        return None
    sizes = (task or {}).get("split_sizes") or {}
    return Score(
        float(value["mean"]),
        float(value.get("std") or 0.0),
        tuple(float(v) for v in value.get("values") or ()),
        tuple(sorted((str(split), int(count)) for split, count in sizes.items())),
    )


def metric_label(metric: str) -> str:
    """The metric's name, saying so when lower is better."""
    return f"{metric} (lower is better)" if metric in LOWER_IS_BETTER else metric


def layer_number(text: str) -> int:
    """A ``by_layer`` key as a number to sort by; one that is not a number sorts last."""
    try:
        return int(text)
    except ValueError:
        return 1 << 30
