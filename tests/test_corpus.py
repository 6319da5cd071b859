import json
from pathlib import Path

import numpy as np
import pytest

from musicssl.corpus import index_folder, read_manifest
from musicssl.errors import MusicSSLError

from conftest import tone


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def folder(tmp_path: Path, write_audio) -> Path:
    write_audio("music/a.wav", tone(220, sr=16000, seconds=1.5), 16000)
    write_audio("music/sub/b.flac", np.stack([tone(330, sr=22050, seconds=2.0)] * 2), 22050)
    write_audio("music/c.ogg", tone(440, sr=44100, seconds=1.0), 44100)
    good = (tmp_path / "music/a.wav").read_bytes()
    (tmp_path / "music/corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    (tmp_path / "music/empty.wav").write_bytes(b"")
    (tmp_path / "music/readme.wav").write_text("this is a text file, not audio")
    (tmp_path / "music/cut.wav").write_bytes(good[: len(good) // 2])
    write_audio("music/silence.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "music/notes.txt").write_text("ignored: not an audio extension")
    return tmp_path / "music"


def test_index_keeps_good_files_and_reports_every_bad_one(folder: Path, tmp_path: Path):
    summary = index_folder(
        folder, out=tmp_path / "m.jsonl", bad=tmp_path / "bad.jsonl", progress=False
    )
    good = _read(tmp_path / "m.jsonl")
    assert [row["path"] for row in good] == ["music/a.wav", "music/c.ogg", "music/sub/b.flac"]
    b = good[2]
    assert (b["sr"], b["channels"], b["frames"]) == (22050, 2, 44100)
    assert b["duration"] == pytest.approx(2.0)
    bad = {Path(row["path"]).name: row["reason"] for row in _read(tmp_path / "bad.jsonl")}
    assert set(bad) == {"corrupt.flac", "empty.wav", "readme.wav", "cut.wav", "silence.wav"}
    assert bad["empty.wav"].startswith("empty")
    assert bad["cut.wav"].startswith("truncated")
    assert bad["silence.wav"].startswith("all silent")
    assert bad["readme.wav"] == "not audio (could not recognise the format)"
    assert (summary.kept, summary.skipped) == (3, 5)
    assert summary.total_seconds == pytest.approx(4.5)


def test_reindex_decodes_only_new_files(folder: Path, tmp_path: Path, write_audio):
    out = tmp_path / "m.jsonl"
    index_folder(folder, out=out, progress=False)
    write_audio("music/d.wav", tone(550, sr=16000, seconds=0.5), 16000)
    summary = index_folder(folder, out=out, progress=False)
    assert (summary.decoded, summary.reused) == (1, 8)
    assert len(_read(out)) == 4
    # The default bad-files report sits beside the manifest.
    assert len(_read(tmp_path / "m.bad.jsonl")) == 5


def test_read_manifest_resolves_paths_against_its_folder(folder: Path, tmp_path: Path):
    out = tmp_path / "sub" / "m.jsonl"
    index_folder(folder, out=out, progress=False)
    rows = read_manifest(out)
    assert rows[0]["path"] == "../music/a.wav"
    assert Path(rows[0]["abspath"]).resolve() == (folder / "a.wav").resolve()


def test_bad_manifest_line_names_file_and_line(tmp_path: Path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"path": "a.wav"}\nnot json\n')
    with pytest.raises(MusicSSLError, match=r"m.jsonl:2"):
        read_manifest(path)
    with pytest.raises(MusicSSLError, match="not a folder"):
        index_folder(tmp_path / "nowhere", out=path)
