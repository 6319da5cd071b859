"""Manifests: one JSON object per line, per clip, with its ``path`` relative to the manifest."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from musicssl import audio
from musicssl.errors import MusicSSLError
from musicssl.files import atomic_path


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a manifest; each row gains ``abspath``, its file resolved against the manifest.

    Raises:
        MusicSSLError: the manifest is missing, or a line is not a JSON object with ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise MusicSSLError(f"{path}: no such manifest")
    base = path.resolve().parent
    rows = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise MusicSSLError(f"{path}:{number}: not JSON ({error.msg})") from None
                if not isinstance(row, dict) or not isinstance(row.get("path"), str):
                    raise MusicSSLError(f"{path}:{number}: expected an object with a 'path' key")
                row["abspath"] = str(base / row["path"])
                rows.append(row)
    except UnicodeDecodeError:
        raise MusicSSLError(f"{path}: not a manifest (not UTF-8 text)") from None
    except OSError as error:
        raise MusicSSLError(f"{path}: {audio.os_error_reason(error, path)}") from None
    return rows


def refuse_report(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Refuse a report of skipped files (``data index``'s ``--bad``) given as a manifest.

    Raises:
        MusicSSLError: every row says why its file was skipped.
    """
    if rows and all("reason" in row for row in rows):
        raise MusicSSLError(f"{path}: a report of skipped files (its rows say why), not a manifest")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write JSON lines whole or not at all (temporary file, then rename).

    A path that is not UTF-8 (a bad file's, in a report) is written with its odd bytes as
    JSON escapes (``"caf\\udce9.wav"``), which read back as the same name.
    """
    with (
        atomic_path(path) as temporary,
        open(temporary, "w", encoding="utf-8", errors="backslashreplace") as handle,
    ):
        for row in rows:
            row = {key: value for key, value in row.items() if key != "abspath"}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
