"""The figures of an evaluation report, as PNG bytes, and the reading of results they share.

``report_figures`` draws every figure a results dict supports: headline scores, confusion
matrices, the t-SNE map, retrieval curves and scores by layer. Each is a matplotlib ``Figure``
made without pyplot (no global state, no GUI backend) and rendered to PNG bytes, which
``musicssl.evaluate.report`` writes to files and embeds in the HTML. The small readers of a
results dict (``task_names``, ``first_task``, ``mean_std``, ...) serve the report's tables too.
matplotlib is imported inside the functions that need it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from musicssl.evaluate.compare import LOWER_IS_BETTER, headline

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

DPI = 110
SEED_NOTE = (
    "each seed re-initialises the probe and scores it on a bootstrap resample of the test set"
)
_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


@dataclass
class ReportFigure:
    """One rendered figure and the words that go with it in the report."""

    file: str  # relative to the output folder: "figures/scores.png"
    title: str
    caption: str
    png: bytes


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


# ----------------------------------------------------------------------------- figures


def report_figures(systems: Sequence[System], seeds: int) -> list[ReportFigure]:
    """Every figure the results support, the first system's where only one is drawn.

    Args:
        systems: the evaluated system first, then its baselines.
        seeds: the number of seeds behind each score, for captions.
    """
    figures: list[ReportFigure] = []
    if scores := _scores_figure(systems, seeds):
        figures.append(scores)
    for name, task in systems[0].results["tasks"].items():
        if task.get("kind") in ("multiclass", "key") and task.get("confusion"):
            if confusion := _confusion_figure(name, task):
                figures.append(confusion)
    if map_figure := _map_figure(systems[0].results.get("map")):
        figures.append(map_figure)
    if retrieval := _retrieval_figure(systems):
        figures.append(retrieval)
    if layers := _layers_figure(systems):
        figures.append(layers)
    return figures


def _new_figure(width: float, height: float) -> MplFigure:
    # Figure objects without pyplot: no global state, no GUI backend; savefig renders with Agg.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _png(figure: MplFigure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _colors(count: int) -> list[Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    return [palette[index % len(palette)] for index in range(count)]


def _figure_legend(figure: MplFigure, axes: Sequence[Any]) -> None:
    """One legend above the panels: each system once, in order, then chance."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    labels = sorted(entries, key=lambda label: label == "chance")  # stable: chance goes last
    figure.legend(
        [entries[label] for label in labels],
        labels,
        loc="outside upper center",
        ncols=min(len(labels), 5),
    )


def _scores_figure(systems: Sequence[System], seeds: int) -> ReportFigure | None:
    entries = []  # (task, metric, chance, [score per system])
    for name in task_names(systems):
        task = first_task(systems, name)
        found = headline(task)
        if found is None:
            continue
        metric = found[0]
        scores = [mean_std(s.results["tasks"].get(name), metric) for s in systems]
        entries.append((name, metric, (task.get("chance") or {}).get(metric), scores))
    if not entries:
        return None

    # Scores on a 0..1 scale share one axis; an unbounded one (mae in BPM) gets its own panel.
    def bounded(entry: tuple[Any, ...]) -> bool:
        return entry[1] not in LOWER_IS_BETTER and all(
            -1.5 <= score[0] <= 1.5 for score in entry[3] if score is not None
        )

    shared = [entry for entry in entries if bounded(entry)]
    apart = [entry for entry in entries if not bounded(entry)]
    widths = ([max(2.0, 1.1 * len(shared))] if shared else []) + [1.8] * len(apart)
    figure = _new_figure(max(6.0, sum(widths) + 1.5), 4.2)
    axes = figure.subplots(1, len(widths), squeeze=False, width_ratios=widths)[0]
    colors = _colors(len(systems))
    groups = ([shared] if shared else []) + [[entry] for entry in apart]
    for ax, group in zip(axes, groups):
        step = 0.8 / len(systems)
        for index, system in enumerate(systems):
            offsets = [g + (index - (len(systems) - 1) / 2) * step for g in range(len(group))]
            means = [entry[3][index][0] if entry[3][index] else np.nan for entry in group]
            stds = [entry[3][index][1] if entry[3][index] else 0.0 for entry in group]
            ax.bar(
                offsets,
                means,
                step * 0.92,
                yerr=stds,
                capsize=3,
                color=colors[index],
                label=system.label,
                error_kw={"elinewidth": 1, "ecolor": "#333"},
            )
        for position, entry in enumerate(group):
            if entry[2] is not None:
                ax.hlines(
                    entry[2], position - 0.45, position + 0.45, colors="k", linestyles="--", lw=1.2
                )
        ax.set_xticks(
            range(len(group)),
            [
                f"{entry[0]}\n{entry[1]}" + (" ↓" if entry[1] in LOWER_IS_BETTER else "")
                for entry in group
            ],
        )
        ax.set_xlim(-0.6, len(group) - 0.4)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if group is shared:
            low = min(
                [0.0]
                + [s[0] - s[1] for e in group for s in e[3] if s is not None]
                + [e[2] for e in group if e[2] is not None]
            )
            ax.set_ylim(low - 0.02 if low < 0 else 0.0, 1.0)
            ax.set_ylabel("score (higher is better)")
        else:
            ax.set_ylabel(metric_label(group[0][1]))
    from matplotlib.lines import Line2D

    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="k", linestyle="--", lw=1.2))
    labels.append("chance")
    figure.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 5))
    caption = (
        "One group of bars per task: its headline metric on the test split. Bars are the mean "
        f"over {seeds} seeds and error bars ±1 std over seeds ({SEED_NOTE}). The dashed tick "
        "is chance, what a random embedding scores. Higher is better except for mae (↓), "
        "which has its own axis."
    )
    return ReportFigure("figures/scores.png", "Headline score per task", caption, _png(figure))


def _key_order(classes: Sequence[str]) -> list[int] | None:
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


def _key_label(name: str) -> str:
    tonic, _, mode = str(name).partition(" ")
    return tonic + ("m" if mode.lower() == "minor" else "")


def _confusion_figure(name: str, task: Mapping[str, Any]) -> ReportFigure | None:
    counts = np.asarray(task["confusion"], dtype=np.float64)
    classes = [str(c) for c in task.get("classes") or range(len(counts))]
    if counts.ndim != 2 or counts.shape != (len(classes), len(classes)):
        return None
    is_key = task.get("kind") == "key"
    order = _key_order(classes) if is_key else None
    if order is not None:
        counts = counts[np.ix_(order, order)]
        classes = [classes[i] for i in order]
    labels = [_key_label(c) for c in classes] if order is not None else classes
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)

    size = len(classes)
    side = min(9.0, max(4.5, 0.3 * size + 2.5))
    figure = _new_figure(side + 1.2, side)
    ax = figure.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    font = 9 if size <= 12 else 7.5
    ax.set_xticks(range(size), labels, fontsize=font, rotation=90 if size > 12 else 35)
    if size <= 12:
        for tick in ax.get_xticklabels():
            tick.set_ha("right")
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
        f"figures/confusion_{_file_part(name)}.png", f"Confusion: {name}", caption, _png(figure)
    )


def _map_figure(map_data: Mapping[str, Any] | None) -> ReportFigure | None:
    if not map_data or not map_data.get("points"):
        return None
    points = np.asarray(map_data["points"], dtype=np.float64)
    labels = list(map_data.get("labels") or [])
    task = str(map_data.get("task", ""))
    if points.ndim != 2 or points.shape[1] != 2 or len(labels) != len(points):
        return None
    figure = _new_figure(7.5, 5.5)
    ax = figure.subplots()
    numeric = all(
        isinstance(label, (int, float)) and not isinstance(label, bool) for label in labels
    )
    if numeric:
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="viridis", s=14)
        figure.colorbar(scatter, ax=ax, label=task)
    else:
        from matplotlib import colormaps

        names = sorted({str(label) for label in labels})
        palette = colormaps["tab10" if len(names) <= 10 else "tab20"].colors
        text = np.array([str(label) for label in labels])
        for index, value in enumerate(names):
            chosen = text == value
            ax.scatter(
                points[chosen, 0],
                points[chosen, 1],
                s=14,
                color=palette[index % len(palette)],
                label=f"{value} ({int(chosen.sum())})",
                alpha=0.85,
                linewidths=0,
            )
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            title=task or None,
            fontsize=8,
            markerscale=1.5,
            frameon=False,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"test embeddings (t-SNE), coloured by {task or 'label'}", fontsize=10)
    caption = (
        f"Each point is one test clip's embedding ({len(points)} clips), placed by t-SNE after "
        f"PCA to 50 dimensions; colour is its {task or 'label'} label, with the number of clips "
        "in the legend. Clips of one label gathering together means the label is easy to read "
        "from the embedding. The axes have no units and distances between far-apart groups "
        "mean little."
    )
    return ReportFigure("figures/map.png", f"Map of test embeddings: {task}", caption, _png(figure))


def _retrieval_figure(systems: Sequence[System]) -> ReportFigure | None:
    names = [
        name
        for name in task_names(systems)
        if any((s.results["tasks"].get(name) or {}).get("curve") for s in systems)
    ]
    if not names:
        return None
    from matplotlib.ticker import NullFormatter

    figure = _new_figure(max(6.0, 4.2 * len(names)), 4.0)
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    colors = _colors(len(systems))
    for ax, name in zip(axes, names):
        for system, color in zip(systems, colors):
            curve = (system.results["tasks"].get(name) or {}).get("curve")
            if curve and curve.get("k"):
                ax.plot(curve["k"], curve["recall"], color=color, lw=1.8, label=system.label)
        task = first_task(systems, name)
        chance = task.get("chance") or {}
        curve = task.get("curve") or {}
        if curve.get("chance") and len(curve["chance"]) == len(curve.get("k", [])):
            # The protocol gives chance at every k: one dashed line as long as the curves.
            ax.plot(curve["k"], curve["chance"], "k--", lw=1, label="chance")
        else:
            ks = sorted(
                int(key.split("@")[1])
                for key in chance
                if key.startswith("recall@") and key.split("@")[1].isdigit()
            )
            if ks:
                ax.plot(
                    ks,
                    [chance[f"recall@{k}"] for k in ks],
                    "k--",
                    marker="o",
                    ms=4,
                    lw=1,
                    label="chance",
                )
        ax.set_xscale("log")
        largest = max(
            len((s.results["tasks"].get(name) or {}).get("curve", {}).get("k", [])) for s in systems
        )
        ticks = [k for k in (1, 2, 5, 10, 20, 50, 100) if k <= max(largest, 1)]
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("k (log scale)")
        ax.set_ylabel("recall@k")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    _figure_legend(figure, axes)
    caption = (
        "Recall@k on the query set: how often a query's relevant gallery items are among its "
        "k nearest neighbours by cosine similarity. Higher is better, and a curve that rises "
        "early (left) finds matches at the top of the list. The dashed line is chance."
    )
    return ReportFigure("figures/retrieval.png", "Retrieval: recall@k", caption, _png(figure))


def _layers_figure(systems: Sequence[System]) -> ReportFigure | None:
    names = [
        name
        for name in task_names(systems)
        if any((s.results["tasks"].get(name) or {}).get("by_layer") for s in systems)
    ]
    if not names:
        return None
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = _new_figure(max(6.0, 3.8 * columns), 3.2 * rows + 0.5)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    colors = _colors(len(systems))
    for ax, name in zip(axes, names):
        task = first_task(systems, name)
        metric = str(task.get("main"))
        for system, color in zip(systems, colors):
            by_layer = (system.results["tasks"].get(name) or {}).get("by_layer") or {}
            points = sorted(
                (layer_number(layer), score)
                for layer, metrics in by_layer.items()
                if (score := mean_std({"metrics": metrics}, metric)) is not None
            )
            if points:
                ax.errorbar(
                    [p[0] for p in points],
                    [p[1][0] for p in points],
                    yerr=[p[1][1] for p in points],
                    color=color,
                    marker="o",
                    ms=4,
                    capsize=3,
                    label=system.label,
                )
        chance = (task.get("chance") or {}).get(metric)
        if chance is not None:
            ax.axhline(chance, color="k", linestyle="--", lw=1, label="chance")
        ax.set_title(f"{name}: {metric_label(metric)}", fontsize=10)
        ax.set_xlabel("layer")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    _figure_legend(figure, axes[: len(names)])
    caption = (
        "The headline metric of a probe trained on each encoder layer's pooled output "
        "(layer 0 is nearest the input), mean ± std over seeds. The dashed line is chance. "
        "Where the curve peaks is the layer that holds the most of this information."
    )
    return ReportFigure("figures/layers.png", "Score by layer", caption, _png(figure))


def _file_part(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "task"
