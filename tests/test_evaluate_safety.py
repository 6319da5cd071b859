"""musicssl evaluate never writes where it must not: audio folders, read-only corpora, the user's
folders; and an .npz that fits no task is an error, not a silent empty report."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from musicssl.corpus import find_audio
from musicssl.errors import MusicSSLError
from musicssl.evaluate import degrade
from musicssl.evaluate.builtin_tasks import style_task
from musicssl.evaluate.run import evaluate


def _hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) by relative path, with its SHA-256."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _one_line(error: pytest.ExceptionInfo[MusicSSLError]) -> str:
    message = str(error.value)
    assert "\n" not in message and message
    return message


def _evaluate(source: str, corpus: Path, tmp_path: Path, **options) -> object:
    settings = {"tasks": ["style"], "seeds": 1, "baselines": [], "progress": False}
    settings.update(options)
    settings.setdefault("out", tmp_path / "out")
    settings.setdefault("cache", tmp_path / "cache")
    return evaluate(source, corpus=corpus, **settings)


@pytest.fixture
def corpus(tiny_corpus: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny corpus, free to be made read-only."""
    copy = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, copy, ignore=shutil.ignore_patterns("degraded"))
    return copy


def test_degraded_copies_go_beside_the_audio_folder_not_into_it(
    corpus: Path, tmp_path: Path
) -> None:
    audio = corpus / "audio"
    before = _hashes(audio)
    indexed = sorted(find_audio(audio))
    results = _evaluate("baseline:logmel", corpus, tmp_path, tasks=["degraded_copy"])
    assert _hashes(audio) == before
    assert sorted(find_audio(audio)) == indexed  # indexing for pretraining sees no test copy
    copies = sorted((corpus / "degraded").glob("*.ogg"))
    queries = results.tasks["degraded_copy"].split_sizes["query"]
    assert len(copies) == queries == 12
    assert (corpus / "degraded" / degrade.LOG).is_file()


def test_a_read_only_corpus_gets_its_copies_in_the_cache(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _hashes(corpus)
    modes = {path: path.stat().st_mode for path in [corpus, *corpus.rglob("*")]}
    for path in modes:
        path.chmod(stat.S_IMODE(modes[path]) & ~0o222)
    # root writes through permission bits: the corpus is read-only to the probe as well
    can_write = degrade._can_write
    monkeypatch.setattr(
        degrade,
        "_can_write",
        lambda folder: not folder.resolve().is_relative_to(corpus.resolve()) and can_write(folder),
    )
    try:
        results = _evaluate("baseline:logmel", corpus, tmp_path, tasks=["degraded_copy"])
    finally:
        for path, mode in modes.items():
            path.chmod(stat.S_IMODE(mode))
    assert _hashes(corpus) == before
    assert not (corpus / "degraded").exists()
    copies = list((tmp_path / "cache" / "degraded").glob("*/*.ogg"))
    assert len(copies) == results.tasks["degraded_copy"].split_sizes["query"]

    # nowhere to write the copies: one line naming the corpus's folder
    monkeypatch.setattr(degrade, "_can_write", lambda folder: False)
    with pytest.raises(MusicSSLError) as error:
        _evaluate("baseline:logmel", corpus, tmp_path, tasks=["degraded_copy"], out=tmp_path / "o")
    assert str(corpus / "degraded") in _one_line(error)
    assert _hashes(corpus) == before


def test_copies_that_cannot_be_written_are_one_line(corpus: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    with pytest.raises(MusicSSLError) as error:
        degrade.degrade_corpus(corpus, out=blocker / "degraded", progress=False)
    assert str(blocker / "degraded") in _one_line(error)
    assert blocker.read_text() == "mine"
    with pytest.raises(MusicSSLError) as error:
        degrade.degrade_corpus(corpus, out=corpus / "audio" / "copies", progress=False)
    assert "inside the audio folder" in _one_line(error)
    assert not (corpus / "audio" / "copies").exists()


def test_a_cache_inside_the_audio_folder_is_refused(corpus: Path, tmp_path: Path) -> None:
    before = _hashes(corpus)
    with pytest.raises(MusicSSLError) as error:
        _evaluate("baseline:logmel", corpus, tmp_path, cache=corpus / "audio" / "cache")
    assert str(corpus / "audio" / "cache") in _one_line(error)
    assert _hashes(corpus) == before


def test_an_npz_that_matches_no_task_is_an_error(corpus: Path, tmp_path: Path) -> None:
    npz = tmp_path / "other.npz"
    np.savez(npz, names=np.array(["song1.wav", "song2.wav"]), emb=np.ones((2, 4), np.float32))
    with pytest.raises(MusicSSLError) as error:
        _evaluate(str(npz), corpus, tmp_path, tasks=["style", "key"])
    message = _one_line(error)
    assert str(npz) in message and "song1.wav" in message
    assert str(corpus / "audio") in message and style_task(corpus).names[0] in message
    assert not (tmp_path / "out").exists()


def test_out_refuses_a_folder_that_is_not_a_report(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("chapter 1")
    (out / "results.json").write_text('{"my": "numbers"}')
    before = _hashes(out)
    with pytest.raises(MusicSSLError) as error:
        _evaluate("baseline:logmel", corpus, tmp_path, out=out)
    assert str(out) in _one_line(error)
    assert _hashes(out) == before

    (out / "results.json").unlink()
    before = _hashes(out)
    with pytest.raises(MusicSSLError) as error:
        _evaluate("baseline:logmel", corpus, tmp_path, out=out)
    assert "no results.json" in _one_line(error)
    assert _hashes(out) == before

    a_file = tmp_path / "report.txt"
    a_file.write_text("keep me")
    with pytest.raises(MusicSSLError) as error:
        _evaluate("baseline:logmel", corpus, tmp_path, out=a_file)
    assert "not a folder" in _one_line(error)
    assert a_file.read_text() == "keep me"


def test_out_replaces_its_own_report_and_keeps_other_files(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    _evaluate("baseline:logmel", corpus, tmp_path, out=out)
    (out / "notes.md").write_text("what I make of it")
    (out / "results.json").write_text(
        json.dumps({**json.loads((out / "results.json").read_text()), "seeds": 99})
    )
    kept = _hashes(out)["notes.md"]
    _evaluate("baseline:logmel", corpus, tmp_path, out=out)
    after = _hashes(out)
    assert after["notes.md"] == kept
    assert json.loads((out / "results.json").read_text())["seeds"] == 1  # replaced
    assert not [name for name in after if ".partial" in name]
    assert {"results.json", "report.md", "report.html", "figures/scores.png"} <= set(after)
