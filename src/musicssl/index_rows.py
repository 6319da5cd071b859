"""Each indexed file's manifest row: reused from an earlier index when its size and time are
unchanged, else decoded and checked (a bad file's row says why), the work saved every few
seconds so that a killed index goes on where it stopped."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musicssl import audio
from musicssl.decoder_notes import decoder_notes
from musicssl.errors import AudioError, MusicSSLError
from musicssl.files import file_hash
from musicssl.manifest import read_manifest, write_jsonl
from musicssl.progress import bar as progress_bar

if TYPE_CHECKING:
    from musicssl.corpus import IndexSummary


def file_rows(
    files: list[Path],
    base: Path,
    previous: dict[str, dict[str, Any]],
    previous_bad: dict[str, dict[str, Any]],
    summary: IndexSummary,
    *,
    workers: int,
    progress: bool,
    progress_file: Path,
) -> list[dict[str, Any]]:
    """Each file's row: reused when its size and time are unchanged, else decoded (a bad
    file's row has its ``reason``); counts and the decoders' notes go to ``summary``. The
    rows decoded so far are saved to ``progress_file`` every few seconds, for a run killed
    before the end to reuse."""
    results, todo = _reuse(files, base, previous, previous_bad)
    summary.reused = sum("bytes" in row for row in results)
    decoded: list[dict[str, Any]] = []
    saved = time.monotonic()
    with decoder_notes() as notes:
        bar = progress_bar(total=len(files), initial=len(files) - len(todo), unit="file",
                           desc="index", disable=not progress, file=notes.console)  # fmt: skip
        for position, row in _inspect(todo, previous, workers):
            results[position] = row
            decoded.append(row)
            summary.decoded += 1
            bar.update()
            if time.monotonic() - saved > _SAVE_SECONDS:
                write_jsonl(progress_file, decoded)
                saved = time.monotonic()
        bar.close()
    summary.notes = notes.lines
    return results


# Seconds between saves of an index's progress: what a killed index loses at most.
_SAVE_SECONDS = 5.0


def partial_rows(path: Path) -> list[dict[str, Any]]:
    """The rows a killed index saved (none if there is no such file, or it is damaged)."""
    try:
        return read_manifest(path) if path.is_file() else []
    except MusicSSLError:
        return []


def _reuse(
    files: list[Path],
    base: Path,
    previous: dict[str, dict[str, Any]],
    previous_bad: dict[str, dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[tuple[int, Path, str, os.stat_result]]]:
    """Rows of files unchanged since the last index, and the files still to decode."""
    results: list[dict[str, Any]] = [{} for _ in files]
    todo: list[tuple[int, Path, str, os.stat_result]] = []
    for position, file in enumerate(files):
        key = relative_path(file, base)
        try:
            stat = file.stat()
        except OSError as error:
            results[position] = {"path": key, "reason": audio.os_error_reason(error, file)}
            continue
        old = previous.get(key) or previous_bad.get(key)
        if (
            old is not None
            and old.get("bytes") == stat.st_size
            and old.get("mtime") == stat.st_mtime
            # A row of an older manifest lacks the samples' digest, which the held-out
            # check matches re-encoded copies by: its file is decoded once more.
            and (("sha256" in old and "samples_sha256" in old) or "reason" in old)
        ):
            results[position] = dict(old)
        else:
            todo.append((position, file, key, stat))
    return results, todo


def _inspect(
    todo: list[tuple[int, Path, str, os.stat_result]],
    previous: dict[str, dict[str, Any]],
    workers: int,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(position, row)`` of each file to decode, a bad file's row with its ``reason``."""

    def inspect(item: tuple[int, Path, str, os.stat_result]) -> tuple[int, dict[str, Any]]:
        position, file, key, stat = item
        row: dict[str, Any] = {"path": key, "bytes": stat.st_size, "mtime": stat.st_mtime}
        try:
            found = audio.check(file)
        except AudioError as error:
            return position, {**row, "reason": error.reason}
        except OSError as error:
            return position, {**row, "reason": audio.os_error_reason(error, file)}
        except Exception as error:  # a decoder's own failure is one bad file, not a stop
            return position, {**row, "reason": f"could not be decoded ({error!r})"}
        try:
            digest = file_hash(file)
        except OSError as error:
            return position, {**row, "reason": audio.os_error_reason(error, file)}
        found_row = dict(duration=round(found.duration, 6), sr=found.sr,
                         channels=found.channels, frames=found.frames, sha256=digest,
                         samples_sha256=found.samples_sha256)  # fmt: skip
        return position, {**previous.get(key, {}), **row, **found_row}

    with ThreadPoolExecutor(max(1, workers)) as pool:
        yield from pool.map(inspect, todo)


def relative_path(file: Path, base: Path) -> str:
    # The folder is resolved, the name is kept: a link is listed under its own name, and a
    # broken link or a link loop still has one.
    real = os.path.join(os.path.realpath(file.parent), file.name)
    return Path(os.path.relpath(real, base)).as_posix()
