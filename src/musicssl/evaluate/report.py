"""Human-readable report of one evaluation: report.md, a self-contained report.html, figures.

``write_report`` turns a results dict (the content of ``results.json``) and, optionally, the
results of baselines on the same tasks into tables and plots. The HTML embeds every figure as a
base64 PNG and loads nothing, so it opens offline and can be mailed as one file. matplotlib and
scikit-learn are imported inside the functions that need them: ``import musicssl`` stays light.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from musicssl.errors import MusicSSLError
from musicssl.evaluate.compare import (
    BEST_MARK,
    LOWER_IS_BETTER,
    MISSING,
    NEAR_MARK,
    format_score,
    headline,
    noise_marks,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

DPI = 110
SEED_NOTE = (
    "each seed re-initialises the probe and scores it on a bootstrap resample of the test set"
)
_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def embedding_map(vectors: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE map of embeddings, for looking at, not for measuring.

    Vectors are standardised per dimension and reduced to 50 dimensions by PCA before t-SNE,
    which keeps t-SNE fast and less sensitive to noisy dimensions. About 3 s for 324 vectors
    of 512 dimensions on 2 cores.

    Args:
        vectors: one embedding per row. Shape: (num_items, dim).
        seed: seeds PCA's solver and t-SNE.

    Returns:
        The map. Shape: (num_items, 2), float32.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] < 1:
        raise MusicSSLError(f"embedding_map: expected (num_items, dim), got {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise MusicSSLError("embedding_map: the embeddings hold NaN or infinite values")
    num_items, dim = vectors.shape
    std = vectors.std(axis=0)
    standard = (vectors - vectors.mean(axis=0)) / np.where(std > 0, std, 1.0)
    if num_items < 4 or dim < 2 or not np.ptp(standard, axis=0).any():
        # t-SNE needs perplexity < num_items, and its PCA start two varying dimensions; such
        # degenerate inputs are shown as they are.
        flat = standard[:, :2]
        return np.pad(flat, ((0, 0), (0, 2 - flat.shape[1]))).astype(np.float32)
    reduced = PCA(n_components=min(50, num_items, dim), random_state=seed).fit_transform(standard)
    tsne = TSNE(
        n_components=2,
        perplexity=min(30.0, (num_items - 1) / 3),
        init="pca",
        learning_rate="auto",
        random_state=seed,
        # Exact gradients beat Barnes-Hut below about a thousand points, and 500 iterations
        # settle a map of a few hundred clips: together about 3x faster than the defaults.
        method="exact" if num_items <= 1000 else "barnes_hut",
        max_iter=500,
    )
    return tsne.fit_transform(reduced).astype(np.float32)


@dataclass
class _Figure:
    file: str  # relative to the output folder: "figures/scores.png"
    title: str
    caption: str
    png: bytes


@dataclass
class _System:
    label: str  # short, for table headers and legends
    results: dict[str, Any]


def write_report(
    results: Mapping[str, Any],
    out_dir: Path | str,
    *,
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write report.md, report.html and figures/*.png for one evaluation.

    Args:
        results: one evaluation's results (the ``results.json`` schema: "source", "corpus",
            "created", "version", "seeds", "tasks", optional "map" and "skipped").
        out_dir: folder to write into (created when missing).
        baselines: results of baselines on the same tasks, by name ("baseline:mfcc").

    Returns:
        Every written file by its path relative to ``out_dir``.
    """
    if not isinstance(results, Mapping) or not isinstance(results.get("tasks"), Mapping):
        raise MusicSSLError("write_report: results need a 'tasks' mapping (see results.json)")
    out_dir = Path(out_dir)
    systems = [_System(_short(str(results.get("source", "source"))), dict(results))]
    for name, other in (baselines or {}).items():
        if not isinstance(other, Mapping) or not isinstance(other.get("tasks"), Mapping):
            raise MusicSSLError(f"write_report: baseline {name} has no 'tasks' mapping")
        systems.append(_System(_short(name), dict(other)))
    _unique_labels(systems)

    figures = _figures(systems, int(results.get("seeds") or 0))
    written: dict[str, Path] = {}
    for figure in figures:
        written[figure.file] = _write_atomic(out_dir / figure.file, figure.png)
    written["report.md"] = _write_atomic(
        out_dir / "report.md", _markdown(systems, figures).encode("utf-8")
    )
    written["report.html"] = _write_atomic(
        out_dir / "report.html", _html(systems, figures).encode("utf-8")
    )
    return written


# ----------------------------------------------------------------------------- tables


def _task_names(systems: Sequence[_System]) -> list[str]:
    names: dict[str, None] = {}
    for system in systems:
        names.update(dict.fromkeys(system.results["tasks"]))
    return list(names)


def _first_task(systems: Sequence[_System], name: str) -> dict[str, Any]:
    for system in systems:
        if name in system.results["tasks"]:
            return system.results["tasks"][name]
    return {}


def _score(task: Mapping[str, Any] | None, metric: str) -> tuple[float, float] | None:
    value = (task or {}).get("metrics", {}).get(metric)
    if not value or value.get("mean") is None:
        return None
    return float(value["mean"]), float(value.get("std") or 0.0)


def _splits(task: Mapping[str, Any], *, frames: bool = False) -> str:
    """ "train 1512, valid 324, test 324"; frame-level tasks add "(380000 frames)" on request."""
    sizes = task.get("split_sizes") or {}
    parts = []
    for split, count in sizes.items():
        if split.startswith("frames_"):
            continue
        text = f"{split} {count}"
        if frames and f"frames_{split}" in sizes:
            text += f" clips ({sizes[f'frames_{split}']} frames)"
        parts.append(text)
    return ", ".join(parts)


def _metric_label(metric: str) -> str:
    return f"{metric} (lower is better)" if metric in LOWER_IS_BETTER else metric


def _summary_rows(systems: Sequence[_System]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Header, cells and per-cell marks ("best", "near", "") of the summary table."""
    header = ["task", "kind", "metric", *(s.label for s in systems), "chance", "split sizes"]
    rows, marks = [], []
    for name in _task_names(systems):
        task = _first_task(systems, name)
        found = headline(task)
        if found is None:
            continue
        metric = found[0]
        scores = [_score(s.results["tasks"].get(name), metric) for s in systems]
        column_marks = noise_marks(scores, lower_is_better=metric in LOWER_IS_BETTER)
        chance = (task.get("chance") or {}).get(metric)
        rows.append(
            [
                name,
                str(task.get("kind", "")),
                _metric_label(metric),
                *(MISSING if score is None else format_score(*score) for score in scores),
                MISSING if chance is None else f"{chance:.3f}",
                _splits(task),
            ]
        )
        marks.append(["", "", "", *column_marks, "", ""])
    return header, rows, marks


def _detail_rows(systems: Sequence[_System], name: str) -> tuple[list[str], list[list[str]]]:
    task = _first_task(systems, name)
    metrics: dict[str, None] = {}
    for system in systems:
        metrics.update(dict.fromkeys(system.results["tasks"].get(name, {}).get("metrics", {})))
    header = ["metric", *(s.label for s in systems), "chance"]
    rows = []
    for metric in metrics:
        chance = (task.get("chance") or {}).get(metric)
        cells = []
        for system in systems:
            score = _score(system.results["tasks"].get(name), metric)
            cells.append(MISSING if score is None else format_score(*score))
        rows.append([_metric_label(metric), *cells, MISSING if chance is None else f"{chance:.3f}"])
    return header, rows


def _probe_text(task: Mapping[str, Any]) -> str:
    probe = task.get("probe") or {}
    return ", ".join(f"{key} {_plain(value)}" for key, value in probe.items())


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _layer_rows(task: Mapping[str, Any]) -> list[list[str]]:
    metric = task.get("main")
    rows = []
    for layer, metrics in sorted(task.get("by_layer", {}).items(), key=lambda i: _int(i[0])):
        score = _score({"metrics": metrics}, metric) if metric else None
        rows.append([str(layer), MISSING if score is None else format_score(*score)])
    return rows


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 1 << 30


def _skipped(systems: Sequence[_System]) -> list[str]:
    lines = [str(line) for line in systems[0].results.get("skipped") or []]
    for system in systems[1:]:
        # A task the corpus cannot support is skipped for every system: say it once.
        lines += [
            f"{system.label}: {line}"
            for line in system.results.get("skipped") or []
            if str(line) not in lines
        ]
    return lines


def _about(systems: Sequence[_System]) -> list[tuple[str, str]]:
    results = systems[0].results
    about = [
        ("source", str(results.get("source", "?"))),
        ("corpus", str(results.get("corpus", "?"))),
        ("date", str(results.get("created", "?")).replace("T", " ")[:19]),
        ("musicssl version", str(results.get("version", "?"))),
        ("seeds", f"{results.get('seeds', '?')} ({SEED_NOTE})"),
    ]
    if len(systems) > 1:
        about.append(("baselines", ", ".join(s.label for s in systems[1:])))
    return about


_READING = (
    "Scores are mean ± std over seeds on the test split. Higher is better for every metric "
    "except mae (lower is better). Chance is what a random embedding scores. "
    f"{BEST_MARK} marks the best system on a task, {NEAR_MARK} a system within noise of it "
    "(|difference| <= 2 · sqrt(std_best² + std²))."
)


# ----------------------------------------------------------------------------- markdown


def _markdown(systems: Sequence[_System], figures: Sequence[_Figure]) -> str:
    results = systems[0].results
    out = [f"# Evaluation of {results.get('source', '?')}", ""]
    out += [f"- **{key}**: {value}" for key, value in _about(systems)]
    out += ["", "## Summary", "", _READING, ""]
    header, rows, marks = _summary_rows(systems)
    marked = [
        [f"{cell} {mark}".rstrip() for cell, mark in zip(row, row_marks)]
        for row, row_marks in zip(rows, marks)
    ]
    out += _md_table(header, marked) if rows else ["No task produced a score."]
    if skipped := _skipped(systems):
        out += ["", "## Skipped", ""] + [f"- {line}" for line in skipped]
    if figures:
        out += ["", "## Figures", ""]
        for figure in figures:
            out += [f"### {figure.title}", "", f"![{figure.title}]({figure.file})", ""]
            out += [figure.caption, ""]
    out += ["## Details by task", ""]
    for name in _task_names(systems):
        task = _first_task(systems, name)
        out += [f"### {name} ({task.get('kind', '?')})", ""]
        if task.get("description"):
            out += [str(task["description"]), ""]
        if task.get("main"):
            out.append(f"- headline metric: {_metric_label(task['main'])}")
        if sizes := _splits(task, frames=True):
            out.append(f"- split sizes: {sizes}")
        if probe := _probe_text(task):
            out.append(f"- probe chosen on valid: {probe}")
        if values := _values(task):
            out.append(f"- {systems[0].label}, {task['main']} per seed: {values}")
        out.append("")
        header, rows = _detail_rows(systems, name)
        if rows:
            out += _md_table(header, rows) + [""]
        if layers := _layer_rows(task):
            out += _md_table(["layer", str(task.get("main"))], layers) + [""]
    return "\n".join(out).rstrip() + "\n"


def _values(task: Mapping[str, Any]) -> str:
    metric = (task.get("metrics") or {}).get(task.get("main") or "", {})
    return ", ".join(f"{value:.3f}" for value in metric.get("values") or [])


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "|".join("---" for _ in header) + "|", *map(line, rows)]


# ----------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; word-break: break-all; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { font-weight: bold; background: #eaf3ea; }
td.near { background: #f5f9f5; }
dl.about { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; }
dl.about dt { font-weight: bold; } dl.about dd { margin: 0; word-break: break-all; }
figure { margin: 1.2em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.92em; max-width: 60em; }
p.note { color: #555; font-size: 0.92em; max-width: 60em; }
ul.skipped li { color: #7a4b00; }
"""


def _html(systems: Sequence[_System], figures: Sequence[_Figure]) -> str:
    results = systems[0].results
    esc = html.escape
    source = esc(str(results.get("source", "?")))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>musicssl evaluation: {source}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Evaluation of {source}</h1>",
        '<dl class="about">',
    ]
    out += [f"<dt>{esc(key)}</dt><dd>{esc(value)}</dd>" for key, value in _about(systems)]
    out += ["</dl>", "<h2>Summary</h2>", f'<p class="note">{esc(_READING)}</p>']
    header, rows, marks = _summary_rows(systems)
    numeric = set(range(3, 3 + len(systems) + 1))
    if rows:
        out.append(_html_table(header, rows, marks, numeric))
    else:
        out.append("<p>No task produced a score.</p>")
    if skipped := _skipped(systems):
        out += ["<h2>Skipped</h2>", '<ul class="skipped">']
        out += [f"<li>{esc(line)}</li>" for line in skipped]
        out.append("</ul>")
    if figures:
        out.append("<h2>Figures</h2>")
    for figure in figures:
        data = base64.b64encode(figure.png).decode("ascii")
        out += [
            f"<h3>{esc(figure.title)}</h3><figure>",
            f'<img src="data:image/png;base64,{data}" alt="{esc(figure.title)}">',
            f"<figcaption>{esc(figure.caption)}</figcaption></figure>",
        ]
    out.append("<h2>Details by task</h2>")
    for name in _task_names(systems):
        task = _first_task(systems, name)
        out.append(f"<h3>{esc(name)} ({esc(str(task.get('kind', '?')))})</h3>")
        if task.get("description"):
            out.append(f"<p>{esc(str(task['description']))}</p>")
        facts = []
        if task.get("main"):
            facts.append(("headline metric", _metric_label(task["main"])))
        if sizes := _splits(task, frames=True):
            facts.append(("split sizes", sizes))
        if probe := _probe_text(task):
            facts.append(("probe chosen on valid", probe))
        if values := _values(task):
            facts.append((f"{systems[0].label}, {task['main']} per seed", values))
        if facts:
            out.append("<ul>")
            out += [f"<li>{esc(key)}: {esc(value)}</li>" for key, value in facts]
            out.append("</ul>")
        header, rows = _detail_rows(systems, name)
        if rows:
            out.append(_html_table(header, rows, None, set(range(1, len(header)))))
        if layers := _layer_rows(task):
            out.append(_html_table(["layer", str(task.get("main"))], layers, None, {1}))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    marks: Sequence[Sequence[str]] | None,
    numeric: set[int],
) -> str:
    esc = html.escape
    out = ["<table><thead><tr>", *(f"<th>{esc(cell)}</th>" for cell in header), "</tr></thead>"]
    out.append("<tbody>")
    for index, row in enumerate(rows):
        out.append("<tr>")
        for column, cell in enumerate(row):
            mark = marks[index][column] if marks else ""
            classes = ["num"] if column in numeric else []
            if mark == BEST_MARK:
                classes.append("best")
            elif mark == NEAR_MARK:
                classes.append("near")
            text = esc(f"{cell} {mark}".rstrip())
            attribute = f' class="{" ".join(classes)}"' if classes else ""
            out.append(f"<td{attribute}>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# ----------------------------------------------------------------------------- figures


def _figures(systems: Sequence[_System], seeds: int) -> list[_Figure]:
    figures: list[_Figure] = []
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


def _scores_figure(systems: Sequence[_System], seeds: int) -> _Figure | None:
    entries = []  # (task, metric, chance, [score per system])
    for name in _task_names(systems):
        task = _first_task(systems, name)
        found = headline(task)
        if found is None:
            continue
        metric = found[0]
        scores = [_score(s.results["tasks"].get(name), metric) for s in systems]
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
            ax.set_ylabel(_metric_label(group[0][1]))
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
    return _Figure("figures/scores.png", "Headline score per task", caption, _png(figure))


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


def _confusion_figure(name: str, task: Mapping[str, Any]) -> _Figure | None:
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
    return _Figure(
        f"figures/confusion_{_file_part(name)}.png", f"Confusion: {name}", caption, _png(figure)
    )


def _map_figure(map_data: Mapping[str, Any] | None) -> _Figure | None:
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
    return _Figure("figures/map.png", f"Map of test embeddings: {task}", caption, _png(figure))


def _retrieval_figure(systems: Sequence[_System]) -> _Figure | None:
    names = [
        name
        for name in _task_names(systems)
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
        chance = _first_task(systems, name).get("chance") or {}
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
    return _Figure("figures/retrieval.png", "Retrieval: recall@k", caption, _png(figure))


def _layers_figure(systems: Sequence[_System]) -> _Figure | None:
    names = [
        name
        for name in _task_names(systems)
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
        task = _first_task(systems, name)
        metric = str(task.get("main"))
        for system, color in zip(systems, colors):
            by_layer = (system.results["tasks"].get(name) or {}).get("by_layer") or {}
            points = sorted(
                (_int(layer), score)
                for layer, metrics in by_layer.items()
                if (score := _score({"metrics": metrics}, metric)) is not None
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
        ax.set_title(f"{name}: {_metric_label(metric)}", fontsize=10)
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
    return _Figure("figures/layers.png", "Score by layer", caption, _png(figure))


# ----------------------------------------------------------------------------- helpers


def _short(name: str, limit: int = 40) -> str:
    """A label for legends and table headers: the tail of a long checkpoint path."""
    if len(name) <= limit:
        return name
    parts = Path(name).parts
    for count in (3, 2, 1):
        tail = "/".join(parts[-count:])
        if len(tail) <= limit:
            return tail
    return "…" + name[-(limit - 1) :]


def _unique_labels(systems: Sequence[_System]) -> None:
    seen: dict[str, int] = {}
    for system in systems:
        count = seen.get(system.label, 0)
        seen[system.label] = count + 1
        if count:
            system.label = f"{system.label} ({count + 1})"


def _file_part(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "task"


def _write_atomic(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
