"""One table over several evaluation runs: which system is best on each task, and which tie.

Each run is the ``--out`` folder of ``musicssl evaluate`` (its ``results.json``). A task's
headline metric is reported as mean ± std over seeds; a cell is marked when it is within noise
of the column's best, so a reader does not take a 0.01 gap between two noisy runs for a win.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from musicssl.errors import MusicSSLError
from musicssl.evaluate.report.reading import (
    BEST_MARK,
    LOWER_IS_BETTER,
    MISSING,
    NEAR_MARK,
    Score,
    format_score,
    headline,
    noise_marks,
)


def read_results(folder: Path | str) -> dict[str, Any]:
    """``folder/results.json`` as a dict, or a MusicSSLError naming what is wrong."""
    folder = Path(folder)
    path = folder / "results.json"
    if not folder.is_dir():
        raise MusicSSLError(
            f"{folder}: no such folder (expected the --out folder of an evaluation)"
        )
    if not path.is_file():
        raise MusicSSLError(
            f"{folder}: no results.json (is it the --out folder of `musicssl evaluate`?)"
        )
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MusicSSLError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(results, dict) or not isinstance(results.get("tasks"), dict):
        raise MusicSSLError(f"{path}: no 'tasks' mapping; not an evaluation result")
    for name, task in results["tasks"].items():
        if problem := _task_problem(task):
            raise MusicSSLError(f"{path}: task {name!r}: {problem}")
    return results


def _task_problem(task: Any) -> str | None:
    """What makes one entry of ``tasks`` unreadable as a task result, or None."""
    if not isinstance(task, dict):
        return f"expected a task result (a mapping), got {json.dumps(task)[:40]}"
    metrics = task.get("metrics", {})
    if not isinstance(metrics, dict):
        return f"'metrics' must be a mapping, got {json.dumps(metrics)[:40]}"
    main = task.get("main")
    if main is not None and not isinstance(main, str):
        return f"'main' must be a metric name, got {json.dumps(main)[:40]}"
    for metric, summary in metrics.items():
        if not isinstance(summary, dict):
            return (
                f"metric {metric!r} must be a mapping with 'mean', got {json.dumps(summary)[:40]}"
            )
        for key in ("mean", "std"):
            value = summary.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                return f"metric {metric!r} has a non-numeric {key!r}: {json.dumps(value)[:40]}"
    return None


def check_complete(folder: Path | str, results: dict[str, Any]) -> None:
    """Refuse a report whose writing did not finish (a full disk, a kill).

    ``write_evaluation`` writes ``report_files`` as null, then the report, then the list of
    the report's files: once the list is there the scores are whole, whether or not the
    report's pages were kept beside them. A results.json without the key (written by hand,
    or by an older version) is taken as it is.
    """
    if "report_files" in results and not isinstance(results["report_files"], list):
        raise MusicSSLError(
            f"{folder}: the evaluation did not finish writing its report (results.json lists "
            "no report files); run `musicssl evaluate` into it again"
        )


def compare_table(dirs: Sequence[Path | str]) -> str:
    """A plain-text, markdown-compatible table of headline scores, one row per run, then one
    per baseline the runs were evaluated beside (``_baseline_rows``).

    Args:
        dirs: evaluation output folders, each holding a ``results.json``.

    Returns:
        The table, then the source of each run and a legend of the marks.
    """
    folders, runs = _read_reports(dirs)
    names = _run_names(folders)
    mixed = _different_data(names, runs)
    baselines = _baseline_rows(names, runs)
    sources = [f"- {name}: {results.get('source', '?')}" for name, results in zip(names, runs)]
    names = [*names, *(name for name, _, _ in baselines)]
    runs = [*runs, *(results for _, results, _ in baselines)]
    sources += [line for _, _, line in baselines]  # "" for a baseline alike beside every run

    columns: dict[tuple[str, str], None] = {}  # (task, metric), in first-seen order
    for results in runs:
        for task_name, task in results["tasks"].items():
            if found := headline(task):
                columns.setdefault((task_name, found[0]), None)

    header = ["run"] + [
        f"{task} {metric}" + (" (lower better)" if metric in LOWER_IS_BETTER else "")
        for task, metric in columns
    ]
    cells = [[name] for name in names]
    for task_name, metric in columns:
        scores: list[Score | None] = []
        for results in runs:
            found = headline(results["tasks"].get(task_name, {}))
            scores.append(found[1] if found and found[0] == metric else None)
        marks = noise_marks(scores, lower_is_better=metric in LOWER_IS_BETTER)
        if task_name in mixed:  # other data in other runs: no best among them
            marks = [""] * len(scores)
        for row, score, mark in zip(cells, scores, marks, strict=True):
            row.append(
                MISSING
                if score is None
                else f"{format_score(score.mean, score.std)} {mark}".rstrip()
            )

    lines = _aligned([header, *cells])
    lines.append("")
    for line, results in zip(sources, runs, strict=True):
        if not line:
            continue
        if results.get("checkpoint"):  # which of a run's checkpoints was read
            line += f" ({Path(str(results['checkpoint'])).name})"
        warned = [str(note) for note in results.get("notes") or []]
        if warned:  # e.g. trained on the test split: its scores are not held out
            line += f"; its report warns: {'; '.join(warned)}"
        lines += textwrap.wrap(line, width=100, subsequent_indent="  ")
    lines.append("")
    lines += _not_comparable(names, runs, mixed)
    legend = (
        f"{BEST_MARK} best in its column; {NEAR_MARK} within noise of the best "
        "(|difference| at most twice the std of the per-seed differences where both runs scored "
        "the same seeds on one test set, else 2 * sqrt(std_best^2 + std^2)); "
        f"{MISSING} task not run. Scores are mean ± std over seeds (each seed re-initialises "
        "the probe and resamples the test set). Higher is better unless a column says lower "
        "better."
    )
    lines += textwrap.wrap(legend, width=100)
    return "\n".join(lines)


def _not_comparable(
    names: Sequence[str], runs: Sequence[dict[str, Any]], mixed: dict[str, str]
) -> list[str]:
    """What makes a column or the whole table unfair to read as a ranking, in words."""
    lines: list[str] = []
    for task, told in mixed.items():
        lines += textwrap.wrap(
            f"Not comparable: task {task!r} is not the same data in every run ({told}); its "
            "column is left unmarked.",
            width=100,
        )
        lines.append("")
    for what, key in (("corpora", "corpus"), ("numbers of seeds", "seeds")):
        # An evaluation of your own tasks alone read no corpus (""); a baseline has no key.
        given = {
            name: results[key] for name, results in zip(names, runs) if results.get(key, "") != ""
        }
        if len(set(map(str, given.values()))) > 1:
            seen = ", ".join(f"{name}: {value}" for name, value in given.items())
            lines += textwrap.wrap(
                f"Not comparable: these runs were evaluated with different {what} ({seen}).",
                width=100,
            )
            lines.append("")
    return lines


def _read_reports(dirs: Sequence[Path | str]) -> tuple[list[Path], list[dict[str, Any]]]:
    """The folders and their results, each checked whole; one report given twice refused."""
    if isinstance(dirs, (str, os.PathLike)):  # one folder, not a list of its letters
        dirs = [dirs]
    if not dirs:
        raise MusicSSLError("compare: give at least one evaluation folder")
    folders = [Path(folder) for folder in dirs]
    resolved = [folder.resolve() for folder in folders]
    for folder in resolved:
        if resolved.count(folder) > 1:
            raise MusicSSLError(f"compare: the report {folder} is given twice")
    runs = [read_results(folder) for folder in folders]
    for folder, results in zip(folders, runs):
        check_complete(folder, results)
    return folders, runs


def _baseline_rows(
    names: Sequence[str], runs: Sequence[dict[str, Any]]
) -> list[tuple[str, dict[str, Any], str]]:
    """A row for each baseline the runs were evaluated beside: (its name, its scores as a
    run's ``tasks``, what it is). A baseline that scored alike beside every run (mfcc and
    logmel on the same tasks) is one row; one that did not (``baseline:random`` takes each
    source's architecture) is a row per run, named after it. A baseline scored the run's test
    sets (their split sizes travel with it, so that its per-seed scores pair with the run's)."""
    scores: dict[str, dict[str, dict[str, Any]]] = {}  # label -> run name -> tasks
    for name, results in zip(names, runs, strict=True):
        for label, tasks in (results.get("baselines") or {}).items():
            scores.setdefault(label, {})[name] = {
                task: {
                    "main": metric,
                    "metrics": {metric: summary},
                    "split_sizes": results["tasks"].get(task, {}).get("split_sizes") or {},
                }
                for task, metrics in tasks.items()
                for metric, summary in metrics.items()
            }
    rows = []
    for label, by_run in scores.items():
        if len({json.dumps(tasks, sort_keys=True) for tasks in by_run.values()}) == 1:
            rows.append((label, {"tasks": next(iter(by_run.values()))}, ""))
            continue
        for name, tasks in by_run.items():
            what = f"- {label} ({name}): {label} as evaluated beside {name}"
            if label == "baseline:random":
                what += ", its source's architecture with random weights"
            rows.append((f"{label} ({name})", {"tasks": tasks}, what))
    return rows


def _run_names(folders: Sequence[Path]) -> list[str]:
    # Folder names are the natural labels; two runs named "eval" in different parents need
    # their parent to tell them apart.
    names = [folder.resolve().name for folder in folders]
    if len(set(names)) < len(names):
        names = ["/".join(folder.resolve().parts[-2:]) for folder in folders]
    if len(set(names)) < len(names):
        names = [str(folder) for folder in folders]
    return names


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return [line(rows[0]), separator, *(line(row) for row in rows[1:])]


def _different_data(names: Sequence[str], runs: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each task name that holds other data in some runs (a table of yours named as a
    built-in task, or two tables of one name), with what each run's task was: its column
    mixes them."""
    mixed = {}
    tasks = dict.fromkeys(task for results in runs for task in results["tasks"])
    for task in tasks:
        seen = {
            name: (entry.get("description"), json.dumps(entry.get("split_sizes"), sort_keys=True))
            for name, results in zip(names, runs, strict=True)
            if isinstance(entry := results["tasks"].get(task), dict)
        }
        if len(set(seen.values())) > 1:
            # Say what differs: the data, or only the split sizes (e.g. pitch frames that an
            # encoder's frame rate makes more or fewer of).
            part = 0 if len({described for described, _ in seen.values()}) > 1 else 1
            mixed[task] = "; ".join(f"{name}: {told[part]}" for name, told in seen.items())
    return mixed
