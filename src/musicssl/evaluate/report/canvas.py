"""What every report figure shares: the rendered-figure record and a matplotlib canvas.

Figures are matplotlib ``Figure`` objects made without pyplot (no global state, no GUI
backend) and rendered to PNG bytes; matplotlib is imported inside the functions that need it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

DPI = 110


@dataclass
class ReportFigure:
    """One rendered figure and the words that go with it in the report."""

    file: str  # relative to the output folder: "figures/scores.png"
    title: str
    caption: str
    png: bytes


def new_figure(width: float, height: float) -> MplFigure:
    # Figure objects without pyplot: no global state, no GUI backend; savefig renders with Agg.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def png(figure: MplFigure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def colors(count: int) -> list[Any]:
    """``count`` colours of the tab10 table, repeating after ten."""
    from matplotlib import colormaps

    table = colormaps["tab10"]
    return [table(index % table.N) for index in range(count)]


def figure_legend(figure: MplFigure, axes: Iterable[Any]) -> None:
    """One legend above the panels: each system once, in order, then chance."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    labels = sorted(entries, key=lambda label: label == "chance")  # stable: chance goes last
    # As many columns as fit the figure's width (a long run path takes a row of its own),
    # so that no entry is cut at the edges: about 0.085 inch a character, 0.6 for the key.
    column = 0.6 + 0.085 * max(len(label) for label in labels)
    fit = int(figure.get_figwidth() // column)
    figure.legend(
        [entries[label] for label in labels],
        labels,
        loc="outside upper center",
        ncols=max(1, min(len(labels), 5, fit)),
    )


def file_part(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "task"
