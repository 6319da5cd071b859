"""The confusion matrix of a classification task, rows normalised; keys in musical order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from musicssl.evaluate.report.canvas import ReportFigure, file_part, new_figure, png
from musicssl.evaluate.report.reading import headline

_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def key_order(classes: Sequence[str]) -> list[int] | None:
    """Order key classes as C..B major, then C..B minor; None when a name does not parse."""
    keys = []
    for index, name in enumerate(classes):
        parts = str(name).split()
        if len(parts) != 2 or not parts[0] or parts[0][0].upper() not in _SEMITONES:
            return None
        tonic, mode = parts
        semitone = _SEMITONES[tonic[0].upper()] + tonic[1:].count("#") - tonic[1:].count("b")
        keys.append((mode.lower() != "major", semitone % 12, index))
    return [index for _, _, index in sorted(keys)]


def key_label(name: str) -> str:
    tonic, _, mode = str(name).partition(" ")
    return tonic + ("m" if mode.lower() == "minor" else "")


def confusion_figure(name: str, task: Mapping[str, Any]) -> ReportFigure | None:
    counts = np.asarray(task["confusion"], dtype=np.float64)
    classes = [str(c) for c in task.get("classes") or range(len(counts))]
    if counts.ndim != 2 or counts.shape != (len(classes), len(classes)):
        return None
    is_key = task.get("kind") == "key"
    order = key_order(classes) if is_key else None
    if order is not None:
        counts = counts[np.ix_(order, order)]
        classes = [classes[i] for i in order]
    labels = [key_label(c) for c in classes] if order is not None else classes
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)

    size = len(classes)
    side = min(9.0, max(4.5, 0.3 * size + 2.5))
    figure = new_figure(side + 1.2, side)
    ax = figure.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    font = 9 if size <= 12 else 7.5
    ax.set_xticks(range(size), labels, fontsize=font, rotation=90 if size > 12 else 35)
    if size <= 12:
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
            tick.set_rotation_mode("anchor")
    ax.set_yticks(range(size), labels, fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if size <= 12:  # a percentage in each cell stays legible up to about a dozen classes
        for row in range(size):
            for column in range(size):
                if counts[row, column]:
                    value = rates[row, column]
                    ax.text(
                        column,
                        row,
                        f"{100 * value:.0f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if value > 0.55 else "black",
                    )
    if order is not None:  # separate the major and minor blocks
        half = size / 2 - 0.5
        ax.axhline(half, color="0.4", lw=0.8)
        ax.axvline(half, color="0.4", lw=0.8)
    score = headline(task)
    title = f"{name}: test confusion, rows sum to 1"
    if score:
        title += f"  ({score[0]} {score[1][0]:.3f})"
    ax.set_title(title, fontsize=10)
    figure.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    caption = (
        "Rows are the true class, columns the probe's prediction (test split, seed 0); each "
        "row sums to 1, so the diagonal is the share of each class recognised"
        + (", and the numbers are percentages. " if size <= 12 else ". ")
    )
    if order is not None:
        caption += (
            "Keys run C to B major, then C to B minor (m = minor). Lines parallel to the "
            "diagonal are systematic errors: a fifth away, or the parallel key of the same tonic "
            "(12 places off), or the relative key."
        )
    return ReportFigure(
        f"figures/confusion_{file_part(name)}.png", f"Confusion: {name}", caption, png(figure)
    )
