"""The state of a corpus build folder: finished, ours, stale, or part-way.

A build writes ``.cache/build.json`` (its size, seed and format) first, a record per finished
clip under ``.cache/clips/``, and the manifest last; these functions read that state so a
build can return at once, resume a killed one, or refuse a folder that is not ours.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from musicssl.builtin import transfer
from musicssl.errors import MusicSSLError
from musicssl.files import write_text

MANIFEST = "manifest.jsonl"


def write_json(path: Path, data: object) -> None:
    """``data`` as one line of JSON, written whole (temp file + rename)."""
    write_text(path, json.dumps(data) + "\n")


def is_complete(out_dir: Path, stamp: dict) -> bool:
    """Whether ``out_dir`` holds a finished build with these settings (every file present).

    Raises:
        MusicSSLError: the folder holds a finished build with other settings.
    """
    manifest = out_dir / MANIFEST
    stamp_file = out_dir / ".cache" / "build.json"
    if not manifest.exists():
        return False
    found = json.loads(stamp_file.read_text()) if stamp_file.exists() else None
    if found != stamp:

        def told(settings: dict) -> str:
            return f"the {settings.get('size')} corpus of seed {settings.get('seed')}"

        held = "a corpus of other settings"
        if isinstance(found, dict) and found.get("format") == stamp.get("format"):
            held = told(found)
        raise MusicSSLError(
            f"{out_dir}: holds {held}, not {told(stamp)}; ask for what it holds (corpus "
            "build --size/--seed, a recipe's data.corpus_size), or build into another folder"
        )
    for folder in (out_dir, out_dir / transfer.FOLDER):
        if not (folder / MANIFEST).exists():
            return False
        for line in (folder / MANIFEST).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if not (folder / record["path"]).exists():
                return False
            if record["f0"] and not (folder / record["f0"]).exists():
                return False
    return True


def check_ours(out: Path) -> None:
    """Refuse a folder that holds files and no build of ours: nothing of the user's is touched."""
    if out.exists() and not out.is_dir():
        raise MusicSSLError(f"{out}: exists and is not a folder; choose another --out")
    if not out.is_dir() or (out / ".cache" / "build.json").is_file():
        return
    held = sorted(path.name for path in out.iterdir())
    if held:
        raise MusicSSLError(
            f"{out}: the folder holds files that are not a musicssl corpus "
            f"({', '.join(held[:3])}{', ...' if len(held) > 3 else ''}); build into a new or "
            "empty folder"
        )


def discard_stale(out_dir: Path, stamp: dict) -> None:
    """Forget the clips of a killed build that had other settings."""
    stamp_file = out_dir / ".cache" / "build.json"
    if stamp_file.exists() and json.loads(stamp_file.read_text()) != stamp:
        for folder in (out_dir, out_dir / transfer.FOLDER):
            for record_file in (folder / ".cache" / "clips").glob("*.json"):
                record = json.loads(record_file.read_text(encoding="utf-8"))
                for key in ("path", "f0"):
                    if record.get(key):
                        (folder / record[key]).unlink(missing_ok=True)
                record_file.unlink()
    write_json(stamp_file, stamp)


def finished_record(out_dir: Path, clip_id: str) -> dict | None:
    """The record of a clip that an earlier run finished, or ``None``."""
    record_file = out_dir / ".cache" / "clips" / f"{clip_id}.json"
    if not record_file.exists():
        return None
    record = json.loads(record_file.read_text(encoding="utf-8"))
    if record.get("skipped"):
        return record
    if not (out_dir / record["path"]).exists():
        return None
    if record["f0"] and not (out_dir / record["f0"]).exists():
        return None
    return record


def build_summary(records: list[dict], out_dir: Path, seconds: float, cached: bool) -> dict:
    """What ``build_corpus`` returns: counts of the clips, and how long the build took."""
    return {
        "out_dir": str(out_dir),
        "manifest": str(out_dir / MANIFEST),
        "num_clips": len(records),
        "splits": dict(Counter(r["split"] for r in records)),
        "styles": dict(Counter(r["style"] for r in records)),
        "monophonic": sum(1 for r in records if r["f0"]),
        "transfer_clips": len(_lines(out_dir / transfer.FOLDER / MANIFEST)),
        "total_seconds": round(sum(r["duration"] for r in records), 3),
        "seconds_taken": round(seconds, 3),
        "cached": cached,
    }


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []


def summarize(manifest_path: str | Path) -> dict:
    """Counts of a built corpus from its manifest.

    Args:
        manifest_path: path of a ``manifest.jsonl``.

    Returns:
        ``num_clips``, clips per ``splits`` and per ``styles``, ``monophonic`` clips,
        ``transfer_clips`` (transfer renders beside them) and ``total_seconds`` of audio.
    """
    path = Path(manifest_path)
    if not path.is_file():
        raise MusicSSLError(f"{path}: no such manifest")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return build_summary(records, path.parent, 0.0, cached=True)
