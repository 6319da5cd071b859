"""The figures of an evaluation report, as PNG bytes.

``report_figures`` draws every figure a results dict supports: headline scores, confusion
matrices (``confusion``), the t-SNE map, retrieval curves and scores by layer, which
``musicssl.evaluate.report.pages`` writes to files and embeds in the HTML.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from musicssl.evaluate.report.canvas import (
    ReportFigure,
    colors,
    figure_legend,
    new_figure,
    png,
)
from musicssl.evaluate.report.confusion import confusion_figure
from musicssl.evaluate.report.reading import (
    LOWER_IS_BETTER,
    Score,
    System,
    first_task,
    headline,
    layer_number,
    mean_std,
    metric_label,
    task_names,
)
from musicssl.plural import counted

SEED_NOTE = (
    "each seed re-initialises the probe and scores it on a bootstrap resample of the test set"
)


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
            if confusion := confusion_figure(name, task):
                figures.append(confusion)
    if map_figure := _map_figure(systems[0].results.get("map")):
        figures.append(map_figure)
    if retrieval := _retrieval_figure(systems):
        figures.append(retrieval)
    if layers := _layers_figure(systems):
        figures.append(layers)
    return figures


_ScoreEntry = tuple[str, str, float | None, list[Score | None]]


def _score_entries(systems: Sequence[System]) -> list[_ScoreEntry]:
    """Per task with a headline: (task, metric, chance, [(mean, std) or None per system])."""
    entries = []
    for name in task_names(systems):
        task = first_task(systems, name)
        found = headline(task)
        if found is None:
            continue
        metric = found[0]
        scores = [mean_std(s.results["tasks"].get(name), metric) for s in systems]
        entries.append((name, metric, (task.get("chance") or {}).get(metric), scores))
    return entries


def _scores_figure(systems: Sequence[System], seeds: int) -> ReportFigure | None:
    entries = _score_entries(systems)
    if not entries:
        return None

    # Scores on a 0..1 scale share one axis; an unbounded one (mae in BPM) gets its own panel.
    def bounded(entry: _ScoreEntry) -> bool:
        return entry[1] not in LOWER_IS_BETTER and all(
            -1.5 <= score[0] <= 1.5 for score in entry[3] if score is not None
        )

    shared = [entry for entry in entries if bounded(entry)]
    apart = [entry for entry in entries if not bounded(entry)]
    widths = ([max(2.0, 1.1 * len(shared))] if shared else []) + [1.8] * len(apart)
    figure = new_figure(max(6.0, sum(widths) + 1.5), 4.2)
    axes = figure.subplots(1, len(widths), squeeze=False, width_ratios=widths)[0]
    groups = ([shared] if shared else []) + [[entry] for entry in apart]
    for ax, group in zip(axes, groups):
        _score_panel(ax, group, systems, shared=group is shared)
    from matplotlib.lines import Line2D

    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="k", linestyle="--", lw=1.2))
    labels.append("chance")
    figure.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 5))
    caption = (
        "One group of bars per task: its headline metric on the test split. Bars are the mean "
        f"over {counted(seeds, 'seed')} and error bars ±1 std over seeds ({SEED_NOTE}). The "
        "dashed tick "
        "is chance, what an embedding with no information scores. "
    ) + _direction(entries, apart)
    return ReportFigure("figures/scores.png", "Headline score per task", caption, png(figure))


def _direction(entries: list[_ScoreEntry], apart: list[_ScoreEntry]) -> str:
    """Which way is better, for the metrics shown, and which have an axis of their own."""
    lower = sorted({metric for _, metric, _, _ in entries if metric in LOWER_IS_BETTER})
    text = f"Higher is better except for {', '.join(lower)} (↓)." if lower else "Higher is better."
    if apart:
        named = ", ".join(sorted({f"{task} {metric}" for task, metric, _, _ in apart}))
        text += f" A score off the 0 to 1 scale has an axis of its own ({named})."
    return text


def _score_panel(
    ax: Any, group: list[_ScoreEntry], systems: Sequence[System], *, shared: bool
) -> None:
    """Bars of every system for the tasks of ``group``, a dashed tick at chance."""
    palette = colors(len(systems))
    step = 0.8 / len(systems)
    for index, system in enumerate(systems):
        offsets = [g + (index - (len(systems) - 1) / 2) * step for g in range(len(group))]
        scores = [entry[3][index] for entry in group]
        means = [score[0] if score else np.nan for score in scores]
        stds = [score[1] if score else 0.0 for score in scores]
        ax.bar(
            offsets,
            means,
            step * 0.92,
            yerr=stds,
            capsize=3,
            color=palette[index],
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
    if shared:
        low = min(
            [0.0]
            + [s[0] - s[1] for e in group for s in e[3] if s is not None]
            + [e[2] for e in group if e[2] is not None]
        )
        ax.set_ylim(low - 0.02 if low < 0 else 0.0, 1.0)
        ax.set_ylabel("score (higher is better)")
    else:
        ax.set_ylabel(metric_label(group[0][1]))


def _map_figure(map_data: Mapping[str, Any] | None) -> ReportFigure | None:
    if not map_data or not map_data.get("points"):
        return None
    points = np.asarray(map_data["points"], dtype=np.float64)
    labels = list(map_data.get("labels") or [])
    task = str(map_data.get("task", ""))
    if points.ndim != 2 or points.shape[1] != 2 or len(labels) != len(points):
        return None
    figure = new_figure(7.5, 5.5)
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
        table = colormaps["tab10" if len(names) <= 10 else "tab20"]
        text = np.array([str(label) for label in labels])
        for index, value in enumerate(names):
            chosen = text == value
            ax.scatter(
                points[chosen, 0],
                points[chosen, 1],
                s=14,
                color=table(index % table.N),
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
    return ReportFigure("figures/map.png", f"Map of test embeddings: {task}", caption, png(figure))


def _retrieval_figure(systems: Sequence[System]) -> ReportFigure | None:
    names = [
        name
        for name in task_names(systems)
        if any((s.results["tasks"].get(name) or {}).get("curve") for s in systems)
    ]
    if not names:
        return None
    from matplotlib.ticker import NullFormatter

    figure = new_figure(max(6.0, 4.2 * len(names)), 4.0)
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    palette = colors(len(systems))
    for ax, name in zip(axes, names):
        for system, color in zip(systems, palette):
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
    figure_legend(figure, axes)
    caption = (
        "Recall@k on the query set: the share of queries with at least one relevant gallery "
        "item among their k nearest neighbours by cosine similarity (one is enough; mAP, in "
        "the tables, counts them all). Higher is better, and a curve that rises "
        "early (left) finds matches at the top of the list. The dashed line is chance."
    )
    return ReportFigure("figures/retrieval.png", "Retrieval: recall@k", caption, png(figure))


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
    figure = new_figure(max(6.0, 3.8 * columns), 3.2 * rows + 0.5)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    palette = colors(len(systems))
    parts = _layer_parts(systems[0].results.get("layer_labels") or {})
    for ax, name in zip(axes, names):
        task = first_task(systems, name)
        metric = str(task.get("main"))
        for system, color in zip(systems, palette):
            by_layer = (system.results["tasks"].get(name) or {}).get("by_layer") or {}
            points = sorted(
                (layer_number(layer), score)
                for layer, metrics in by_layer.items()
                if layer.isdigit() and (score := mean_std({"metrics": metrics}, metric)) is not None
            )
            for number, run in enumerate(_runs_of_one_part(points, parts)):
                ax.errorbar(
                    [p[0] for p in run],
                    [p[1][0] for p in run],
                    yerr=[p[1][1] for p in run],
                    color=color,
                    marker="o",
                    ms=4,
                    capsize=3,
                    label=system.label if number == 0 else None,
                )
        _mark_parts(ax, parts)
        chance = (task.get("chance") or {}).get(metric)
        if chance is not None:
            ax.axhline(chance, color="k", linestyle="--", lw=1, label="chance")
        ax.set_title(f"{name}: {metric_label(metric)}", fontsize=10)
        ax.set_xlabel("layer")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    figure_legend(figure, axes[: len(names)])
    branches = (
        "An encoder of parallel branches numbers its layers branch after branch (dotted "
        "lines part them, each named at the top), then its joint last layer; each branch's "
        "layer 0 is nearest the input. "
        if parts
        else ""
    )
    caption = (
        "The headline metric of a probe trained on each encoder layer's pooled output "
        "(pitch: on its frames; layer 0 is nearest the input), mean ± std over seeds, for "
        f"each system probed layer by layer. {branches}The dashed line is chance. "
        "Where the curve peaks is the layer that holds the most of this information; the "
        "tables under each task add a learned weighted sum of the layers (where they share "
        "one width)."
    )
    return ReportFigure("figures/layers.png", "Score by layer", caption, png(figure))


def _layer_parts(labels: Mapping[str, str]) -> dict[int, str]:
    """The part (branch, or "joint") of each numbered layer, from ``layer_labels`` ("key
    layer 2" -> "key"); {} for an encoder of one stack of layers."""
    return {
        int(layer): label.split(" layer ")[0]
        for layer, label in labels.items()
        if layer.isdigit() and label
    }


def _runs_of_one_part(points: list, parts: Mapping[int, str]) -> list[list]:
    """``points`` (layer number first) cut where the part changes: no line joins two branches."""
    runs: list[list] = []
    for point in points:
        if runs and parts.get(point[0]) == parts.get(runs[-1][-1][0]):
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def _mark_parts(ax: Any, parts: Mapping[int, str]) -> None:
    """A dotted line before each part but the first, and each part's name at the top."""
    starts = [n for n in sorted(parts) if n - 1 not in parts or parts[n - 1] != parts[n]]
    left = ax.get_xlim()[0]
    for number in starts:
        if number != starts[0]:
            ax.axvline(number - 0.5, color="0.5", linestyle=":", lw=1)
        ax.text(max(number - 0.45, left + 0.05), 0.98, parts[number], fontsize=7, va="top",
                color="0.3", transform=ax.get_xaxis_transform())  # fmt: skip
