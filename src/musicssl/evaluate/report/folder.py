"""An evaluation's output folder: recognised as ours by its ``results.json``, written whole.

``musicssl evaluate --out DIR`` writes into a folder that is missing, empty, or an earlier
evaluation report (a folder whose ``results.json`` reads as evaluation results); anything else
is refused before any work starts, so no file of the user's is overwritten or deleted. Each
file of the report replaces the old one atomically (``musicssl.files``); ``results.json`` is
written first, so a folder left by an interrupted write is still recognised as a report, and
again last with ``report_files``, the files of the finished report: ``compare`` refuses a
folder whose report did not finish, and the next evaluation into the folder removes the
figures the old report listed and the new one does not.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from musicssl.errors import MusicSSLError
from musicssl.evaluate.report.compare import read_results
from musicssl.evaluate.report.pages import write_report
from musicssl.evaluate.report.reconstruction import mae_reconstruction
from musicssl.files import LOCK_NAME, write_text

RESULTS = "results.json"
FIGURES = "figures/"


def check_out(out: str | os.PathLike) -> Path:
    """``out`` as a path, once it is known to be safe to write a report into.

    Raises:
        MusicSSLError: ``out`` is a file, or a non-empty folder that is not a report.
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise MusicSSLError(f"{folder}: exists and is not a folder; choose another --out")
    if not folder.is_dir() or all(path.name == LOCK_NAME for path in folder.iterdir()):
        return folder
    if not (folder / RESULTS).is_file():
        raise MusicSSLError(
            f"{folder}: the folder holds files and no {RESULTS}, so it is not an evaluation "
            "report; choose a new or empty --out"
        )
    try:
        read_results(folder)
    except MusicSSLError as error:
        raise MusicSSLError(
            f"{folder}: not an evaluation report ({error}); choose a new or empty --out"
        ) from None
    return folder


def write_evaluation(
    out: str | os.PathLike,
    results: Mapping[str, Any],
    *,
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write ``results.json`` and the report (``write_report``) into ``out``.

    Args:
        out: the output folder; checked again with ``check_out``.
        results: the ``results.json`` content.
        baselines: the results of the baselines set beside it, by ``baseline:NAME``.

    Returns:
        Every written file by its path relative to ``out``.
    """
    folder = check_out(out)
    previous = _previous_files(folder)
    # Written first with no report_files, so the folder is recognised as a report even if
    # what follows fails, and ``compare`` refuses it until the report is whole.
    pending = {**results, "report_files": None}
    written = {RESULTS: write_text(folder / RESULTS, json.dumps(pending, indent=1))}
    run = results.get("checkpoint") or results.get("source", "")  # the checkpoint evaluated
    drawn = mae_reconstruction(str(run), str(results.get("corpus", "")))
    figures = [drawn] if drawn is not None else []
    written.update(write_report(results, folder, baselines=baselines, figures=figures))
    files = sorted(name for name in written if name != RESULTS)
    write_text(folder / RESULTS, json.dumps({**results, "report_files": files}, indent=1))
    for name in sorted(previous - set(files)):
        # Only figures our earlier report listed; report.md and .html are always rewritten.
        stale = folder / name
        if name.startswith(FIGURES) and stale.is_file() and not stale.is_symlink():
            stale.unlink()
    return written


def _previous_files(folder: Path) -> set[str]:
    """The files the report already in ``folder`` lists as its own (none when unknown)."""
    try:
        listed = json.loads((folder / RESULTS).read_text(encoding="utf-8")).get("report_files")
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(listed, list):
        return set()
    # A listed name is used only when it stays inside the folder.
    return {
        str(name)
        for name in listed
        if isinstance(name, str) and ".." not in Path(name).parts and not Path(name).is_absolute()
    }
