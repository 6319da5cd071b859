"""Human-readable report of one evaluation: report.md, a self-contained report.html, figures.

``write_report`` turns a results dict (the content of ``results.json``) and, optionally, the
results of baselines on the same tasks into tables and plots (drawn by
``musicssl.evaluate.figures``). The HTML embeds every figure as a base64 PNG and loads nothing,
so it opens offline and can be mailed as one file. matplotlib and scikit-learn are imported
inside the functions that need them: ``import musicssl`` stays light.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
from musicssl.evaluate.figures import (
    SEED_NOTE,
    ReportFigure,
    System,
    first_task,
    layer_number,
    mean_std,
    metric_label,
    report_figures,
    task_names,
)


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
    systems = [System(_short(str(results.get("source", "source"))), dict(results))]
    for name, other in (baselines or {}).items():
        if not isinstance(other, Mapping) or not isinstance(other.get("tasks"), Mapping):
            raise MusicSSLError(f"write_report: baseline {name} has no 'tasks' mapping")
        systems.append(System(_short(name), dict(other)))
    _unique_labels(systems)

    figures = report_figures(systems, int(results.get("seeds") or 0))
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


def _summary_rows(systems: Sequence[System]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Header, cells and per-cell marks ("best", "near", "") of the summary table."""
    header = ["task", "kind", "metric", *(s.label for s in systems), "chance", "split sizes"]
    rows, marks = [], []
    for name in task_names(systems):
        task = first_task(systems, name)
        found = headline(task)
        if found is None:
            continue
        metric = found[0]
        scores = [mean_std(s.results["tasks"].get(name), metric) for s in systems]
        column_marks = noise_marks(scores, lower_is_better=metric in LOWER_IS_BETTER)
        chance = (task.get("chance") or {}).get(metric)
        rows.append(
            [
                name,
                str(task.get("kind", "")),
                metric_label(metric),
                *(MISSING if score is None else format_score(*score) for score in scores),
                MISSING if chance is None else f"{chance:.3f}",
                _splits(task),
            ]
        )
        marks.append(["", "", "", *column_marks, "", ""])
    return header, rows, marks


def _detail_rows(systems: Sequence[System], name: str) -> tuple[list[str], list[list[str]]]:
    task = first_task(systems, name)
    metrics: dict[str, None] = {}
    for system in systems:
        metrics.update(dict.fromkeys(system.results["tasks"].get(name, {}).get("metrics", {})))
    header = ["metric", *(s.label for s in systems), "chance"]
    rows = []
    for metric in metrics:
        chance = (task.get("chance") or {}).get(metric)
        cells = []
        for system in systems:
            score = mean_std(system.results["tasks"].get(name), metric)
            cells.append(MISSING if score is None else format_score(*score))
        rows.append([metric_label(metric), *cells, MISSING if chance is None else f"{chance:.3f}"])
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
    for layer, metrics in sorted(
        task.get("by_layer", {}).items(), key=lambda i: layer_number(i[0])
    ):
        score = mean_std({"metrics": metrics}, metric) if metric else None
        rows.append([str(layer), MISSING if score is None else format_score(*score)])
    return rows


def _skipped(systems: Sequence[System]) -> list[str]:
    lines = [str(line) for line in systems[0].results.get("skipped") or []]
    for system in systems[1:]:
        # A task the corpus cannot support is skipped for every system: say it once.
        lines += [
            f"{system.label}: {line}"
            for line in system.results.get("skipped") or []
            if str(line) not in lines
        ]
    return lines


def _about(systems: Sequence[System]) -> list[tuple[str, str]]:
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


def _markdown(systems: Sequence[System], figures: Sequence[ReportFigure]) -> str:
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
    for name in task_names(systems):
        task = first_task(systems, name)
        out += [f"### {name} ({task.get('kind', '?')})", ""]
        if task.get("description"):
            out += [str(task["description"]), ""]
        if task.get("main"):
            out.append(f"- headline metric: {metric_label(task['main'])}")
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


def _html(systems: Sequence[System], figures: Sequence[ReportFigure]) -> str:
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
    for name in task_names(systems):
        task = first_task(systems, name)
        out.append(f"<h3>{esc(name)} ({esc(str(task.get('kind', '?')))})</h3>")
        if task.get("description"):
            out.append(f"<p>{esc(str(task['description']))}</p>")
        facts = []
        if task.get("main"):
            facts.append(("headline metric", metric_label(task["main"])))
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


def _unique_labels(systems: Sequence[System]) -> None:
    seen: dict[str, int] = {}
    for system in systems:
        count = seen.get(system.label, 0)
        seen[system.label] = count + 1
        if count:
            system.label = f"{system.label} ({count + 1})"


def _write_atomic(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
