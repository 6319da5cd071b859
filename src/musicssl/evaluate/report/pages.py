"""Human-readable report of one evaluation: report.md, a self-contained report.html, figures.

``write_report`` turns a results dict (the content of ``results.json``) and, optionally, the
results of baselines on the same tasks into tables (``tables``) and plots (``figures``). The
HTML embeds every figure as a base64 PNG and loads nothing, so it opens offline and can be
mailed as one file. Every file is written whole (``musicssl.files``). matplotlib is imported
inside the functions that need it: ``import musicssl`` stays light.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from musicssl.errors import MusicSSLError
from musicssl.evaluate.report.canvas import ReportFigure
from musicssl.evaluate.report.figures import report_figures
from musicssl.evaluate.report.reading import (
    BEST_MARK,
    NEAR_MARK,
    System,
    first_task,
    metric_label,
    task_names,
)
from musicssl.evaluate.report.tables import (
    about_rows,
    detail_rows,
    layer_note,
    layer_table,
    note_lines,
    probe_text,
    reading,
    seed_values,
    skipped_file_lines,
    skipped_lines,
    split_text,
    summary_rows,
    task_notes,
)
from musicssl.files import write_bytes


def write_report(
    results: Mapping[str, Any],
    out_dir: Path | str,
    *,
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
    figures: Sequence[ReportFigure] = (),
) -> dict[str, Path]:
    """Write report.md, report.html and figures/*.png for one evaluation.

    Args:
        results: one evaluation's results (the ``results.json`` schema: "source", "corpus",
            "created", "version", "seeds", "tasks", optional "map" and "skipped").
        out_dir: folder to write into (created when missing).
        baselines: results of baselines on the same tasks, by name ("baseline:mfcc").
        figures: figures drawn from the source itself (e.g. MAE reconstructions), shown
            after those of the scores.

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

    figures = [*report_figures(systems, int(results.get("seeds") or 0)), *figures]
    written: dict[str, Path] = {}
    for figure in figures:
        written[figure.file] = write_bytes(out_dir / figure.file, figure.png)
    written["report.md"] = write_bytes(
        out_dir / "report.md", _markdown(systems, figures).encode("utf-8")
    )
    written["report.html"] = write_bytes(
        out_dir / "report.html", _html(systems, figures).encode("utf-8")
    )
    return written


# ----------------------------------------------------------------------------- markdown


def _markdown(systems: Sequence[System], figures: Sequence[ReportFigure]) -> str:
    results = systems[0].results
    out = [f"# Evaluation of {results.get('source', '?')}", ""]
    out += [f"- **{key}**: {value}" for key, value in about_rows(systems)]
    if notes := note_lines(systems):
        out += ["", "## Read this first", ""] + [f"- **{line}**" for line in notes]
    out += ["", "## Summary", "", reading(systems), ""]
    header, rows, marks = summary_rows(systems)
    marked = [
        [f"{cell} {mark}".rstrip() for cell, mark in zip(row, row_marks)]
        for row, row_marks in zip(rows, marks)
    ]
    out += _md_table(header, marked) if rows else ["No task produced a score."]
    if moves := _equivariance_rows(results):
        out += ["", "## Equivariance", "", EQUIVARIANCE_NOTE, ""]
        out += _md_table(EQUIVARIANCE_HEADER, moves)
    if skipped := skipped_lines(systems):
        out += ["", "## Skipped", ""] + [f"- {line}" for line in skipped]
    if files := skipped_file_lines(systems):
        out += ["", "## Files not embedded", ""] + [f"- {line}" for line in files]
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
        if sizes := split_text(task, frames=True):
            out.append(f"- split sizes: {sizes}")
        if probe := probe_text(task):
            out.append(f"- probe chosen on valid: {probe}")
        if values := seed_values(task):
            out.append(f"- {systems[0].label}, {task['main']} per seed: {values}")
        out += [f"- note: {line}" for line in task_notes(task)]
        out.append("")
        header, rows = detail_rows(systems, name)
        if rows:
            out += _md_table(header, rows) + [""]
        layer_header, layer_rows = layer_table(systems, name)
        if layer_rows:
            out += _md_table(layer_header, layer_rows) + ["", layer_note(systems, name), ""]
    return "\n".join(out).rstrip() + "\n"


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
ul.warning li { color: #a00000; font-weight: bold; }
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
    out += [f"<dt>{esc(key)}</dt><dd>{esc(value)}</dd>" for key, value in about_rows(systems)]
    out.append("</dl>")
    if notes := note_lines(systems):
        out += ["<h2>Read this first</h2>", '<ul class="warning">']
        out += [f"<li>{esc(line)}</li>" for line in notes]
        out.append("</ul>")
    out += ["<h2>Summary</h2>", f'<p class="note">{esc(reading(systems))}</p>']
    header, rows, marks = summary_rows(systems)
    numeric = set(range(3, 3 + len(systems) + 1))
    if rows:
        out.append(_html_table(header, rows, marks, numeric))
    else:
        out.append("<p>No task produced a score.</p>")
    if moves := _equivariance_rows(results):
        out += ["<h2>Equivariance</h2>", f'<p class="note">{esc(EQUIVARIANCE_NOTE)}</p>']
        out.append(_html_table(EQUIVARIANCE_HEADER, moves, None, {1, 2, 3}))
    if skipped := skipped_lines(systems):
        out += ["<h2>Skipped</h2>", '<ul class="skipped">']
        out += [f"<li>{esc(line)}</li>" for line in skipped]
        out.append("</ul>")
    if files := skipped_file_lines(systems):
        out += ["<h2>Files not embedded</h2>", '<ul class="skipped">']
        out += [f"<li>{esc(line)}</li>" for line in files]
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
        if sizes := split_text(task, frames=True):
            facts.append(("split sizes", sizes))
        if probe := probe_text(task):
            facts.append(("probe chosen on valid", probe))
        if values := seed_values(task):
            facts.append((f"{systems[0].label}, {task['main']} per seed", values))
        facts += [("note", line) for line in task_notes(task)]
        if facts:
            out.append("<ul>")
            out += [f"<li>{esc(key)}: {esc(value)}</li>" for key, value in facts]
            out.append("</ul>")
        header, rows = detail_rows(systems, name)
        if rows:
            out.append(_html_table(header, rows, None, set(range(1, len(header)))))
        layer_header, layer_rows = layer_table(systems, name)
        if layer_rows:
            numeric = set(range(1, len(layer_header)))
            out.append(_html_table(layer_header, layer_rows, None, numeric))
            out.append(f'<p class="note">{esc(layer_note(systems, name))}</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


EQUIVARIANCE_HEADER = ["transform", "invariance", "d(x, Tx)", "d(x, y)"]
EQUIVARIANCE_NOTE = (
    "How far the clip embedding moves under a transform of known size: invariance = "
    "1 - d(x, Tx) / d(x, y), cosine distances averaged over test clips (d(x, y): between "
    "different clips). 1: unmoved; 0: moved as far as another clip; pitch shifts are "
    "tape-style (tempo moves too), tempo changes keep pitch. Neither end is better in itself: "
    "an embedding that must tell keys or pitches apart has to move under a pitch shift, one "
    "for style or tags may stay; near 1 under a pitch shift, key and pitch are lost to any probe."
)


def _equivariance_rows(results: Mapping[str, Any]) -> list[list[str]]:
    moves = results.get("equivariance") or {}
    return [
        [name, f"{v['invariance']:.3f}", f"{v['distance']:.4f}", f"{v['between_clips']:.4f}"]
        for name, v in moves.items()
    ]


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
