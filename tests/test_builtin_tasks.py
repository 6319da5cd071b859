"""evaluate.builtin_tasks on a tiny built corpus and on hand-written manifests."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mir_eval.key import validate_key

from musicssl.builtin import build_corpus
from musicssl.errors import MusicSSLError
from musicssl.evaluate.builtin_tasks import (
    PITCH_CLASSES,
    TASKS,
    builtin_tasks,
    instrument_task,
    key_task,
    pitch_task,
    same_piece_task,
    style_task,
)
from musicssl.evaluate.task import Task


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    build_corpus(out, size="tiny", seed=0, workers=2, progress=False)
    return out


@pytest.fixture(scope="module")
def rows(corpus: Path) -> list[dict]:
    return [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tasks(corpus: Path) -> dict[str, Task]:
    return {task.name: task for task in builtin_tasks(corpus)}


def test_builtin_tasks_builds_every_registered_task_in_order(
    corpus: Path, tasks: dict[str, Task]
) -> None:
    assert list(tasks) == list(TASKS)
    assert [task.name for task in builtin_tasks(corpus, ["tempo", "style"])] == ["tempo", "style"]
    with pytest.raises(MusicSSLError, match="unknown built-in task.*'genre'"):
        builtin_tasks(corpus, ["genre"])


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_names_files_under_its_root_with_sizes_that_add_up(
    name: str, corpus: Path, rows: list[dict], tasks: dict[str, Task]
) -> None:
    task = tasks[name]
    assert task.root == corpus / "audio"
    for example in task.examples:
        assert (task.root / example.name).is_file(), example.name
        assert not Path(example.name).is_absolute()
    sizes = task.split_sizes()
    test_clips = sum(row["split"] == "test" for row in rows)
    if task.kind == "retrieval":
        assert sizes["gallery"] == test_clips
        assert 0 < sizes["query"] <= test_clips
    elif task.kind == "pitch":
        assert sizes == Counter(row["split"] for row in rows if row["monophonic"])
    else:
        assert sizes == Counter(row["split"] for row in rows)
        assert sum(sizes.values()) == len(task.names) == len(rows)
    assert list(task.classes) == sorted(task.classes)
    assert task.description


@pytest.mark.parametrize("name", ["style", "key"])
def test_single_label_classes_are_exactly_the_targets(
    name: str, rows: list[dict], tasks: dict[str, Task]
) -> None:
    task = tasks[name]
    field = {"style": "style", "key": "key"}[name]
    assert task.classes == tuple(sorted({row[field] for row in rows}))
    by_name = {row["path"].removeprefix("audio/"): row[field] for row in rows}
    assert all(example.target == by_name[example.name] for example in task.examples)


def test_key_labels_are_mir_eval_keys(tasks: dict[str, Task]) -> None:
    for example in tasks["key"].examples:
        validate_key(example.target)
        tonic, mode = example.target.split()
        assert mode in ("major", "minor")


def test_tempo_targets_are_the_manifest_bpm(rows: list[dict], tasks: dict[str, Task]) -> None:
    by_name = {row["path"].removeprefix("audio/"): row["tempo"] for row in rows}
    for example in tasks["tempo"].examples:
        assert isinstance(example.target, float) and example.target == by_name[example.name]


def test_instrument_tags_are_the_kept_subset_of_each_clip(
    rows: list[dict], tasks: dict[str, Task]
) -> None:
    task = tasks["instrument"]
    kept = set(task.classes)
    assert kept and kept.isdisjoint(task.extra["dropped"])
    assert kept | set(task.extra["dropped"]) == {tag for row in rows for tag in row["instruments"]}
    by_name = {row["path"].removeprefix("audio/"): set(row["instruments"]) for row in rows}
    for example in task.examples:
        assert isinstance(example.target, tuple)
        assert list(example.target) == sorted(by_name[example.name] & kept)
    needed = task.extra["min_positives"]
    for tag in kept:
        counts = Counter(e.split for e in task.examples if tag in e.target)
        assert min(counts[split] for split in ("train", "valid", "test")) >= needed


def test_pitch_targets_are_f0_tracks_of_monophonic_clips(
    corpus: Path, rows: list[dict], tasks: dict[str, Task]
) -> None:
    task = tasks["pitch"]
    assert task.f0_hop == 0.01 and task.classes == PITCH_CLASSES
    by_name = {row["path"].removeprefix("audio/"): row for row in rows}
    for example in task.examples:
        row = by_name[example.name]
        assert row["monophonic"]
        f0 = example.target
        assert isinstance(f0, np.ndarray) and f0.ndim == 1
        np.testing.assert_array_equal(f0, np.load(corpus / row["f0"]))
        # One value every 10 ms over the clip.
        assert abs(len(f0) * task.f0_hop - row["duration"]) <= 2 * task.f0_hop
        assert np.any(f0 > 0) and np.all(f0 >= 0)


def test_pitch_classes_follow_midi_note_order() -> None:
    # A4 = MIDI 69 is "A"; C4 = MIDI 60 is "C"; F#5 = MIDI 78 is "F#".
    assert [PITCH_CLASSES[(m - 69) % 12] for m in (69, 60, 78, 70)] == ["A", "C", "F#", "A#"]


@pytest.mark.parametrize("name", ["same_piece", "degraded_copy"])
def test_every_query_has_a_relevant_gallery_item_other_than_itself(
    name: str, tasks: dict[str, Task]
) -> None:
    task = tasks[name]
    gallery = [(example.name, example.target) for example in task.split("gallery")]
    for query in task.split("query"):
        relevant = [n for n, group in gallery if group == query.target and n != query.name]
        assert relevant, query.name


def test_same_piece_groups_are_pieces_of_the_test_split(
    rows: list[dict], tasks: dict[str, Task]
) -> None:
    test = {
        row["path"].removeprefix("audio/"): row["piece_id"]
        for row in rows
        if row["split"] == "test"
    }
    for example in tasks["same_piece"].examples:
        assert test[example.name] == example.target


def test_degraded_copy_pairs_each_copy_with_its_original(
    corpus: Path, rows: list[dict], tasks: dict[str, Task]
) -> None:
    task = tasks["degraded_copy"]
    test_ids = [row["clip_id"] for row in rows if row["split"] == "test"]
    assert [q.name for q in task.split("query")] == [f"../degraded/{c}.ogg" for c in test_ids]
    assert [q.target for q in task.split("query")] == test_ids
    assert [g.name for g in task.split("gallery")] == [f"{c}.wav" for c in test_ids]
    assert (task.root / task.extra["degradations"]).is_file()
    for query in task.split("query"):
        copy, sr = sf.read(str(task.root / query.name))
        original = sf.read(str(task.root / f"{query.target}.wav"))[0]
        assert sr == 16000 and len(copy) == len(original)


# Hand-written corpora: the errors, and the rules the tiny corpus cannot show.


def _row(clip_id: str, split: str, **fields) -> dict:
    row = {
        "clip_id": clip_id,
        "path": f"audio/{clip_id}.wav",
        "split": split,
        "style": "bach_chorale",
        "key": "C major",
        "tempo": 100,
        "instruments": ["piano"],
        "piece_id": clip_id,
        "monophonic": False,
        "f0": None,
        "f0_hop": None,
    }
    return {**row, **fields}


def _write(folder: Path, rows: list[dict]) -> Path:
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    for row in rows:
        sf.write(str(folder / row["path"]), np.zeros(160, np.float32), 16000)
        if row["f0"]:
            (folder / "f0").mkdir(exist_ok=True)
            np.save(folder / row["f0"], np.full(10, 220.0, np.float32))
    (folder / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def _splits(count: int) -> list[tuple[str, str]]:
    return [
        (f"{split}-{i:02d}", split) for split in ("train", "valid", "test") for i in range(count)
    ]


def test_instrument_drops_tags_too_rare_or_too_common_in_any_split(tmp_path: Path) -> None:
    # 20 clips a split, min_positives 2: the bar is min(2, 20 // 10) = 2 clips in every split.
    def tags(clip_id: str, split: str) -> list[str]:
        number = int(clip_id[-2:])
        found = ["organ"]  # in every clip: never a negative, nothing to score
        if number < 2:
            found.append("violin")  # 2 in every split: kept
        if number < 3 and split != "valid":
            found.append("tuba")  # none in valid: dropped
        if number < 10:
            found.append("flute")  # 10 in every split: kept
        return found

    rows = [_row(c, s, instruments=tags(c, s)) for c, s in _splits(20)]
    task = instrument_task(_write(tmp_path, rows), min_positives=2)
    assert task.classes == ("flute", "violin")
    assert task.extra["min_positives"] == 2
    assert task.extra["dropped"] == {
        "organ": {"train": 20, "valid": 20, "test": 20},
        "tuba": {"train": 3, "valid": 0, "test": 3},
    }
    assert "organ" in task.description and "tuba" in task.description
    assert next(e for e in task.examples if e.name == "test-00.wav").target == ("flute", "violin")
    assert next(e for e in task.examples if e.name == "test-15.wav").target == ()
    # The default bar of 5 on 20-clip splits is lowered to 2, one per 10 clips.
    assert instrument_task(tmp_path).extra["min_positives"] == 2
    # No tag clears the bar: an error, not an empty task.
    rows = [_row(c, s, instruments=["organ"]) for c, s in _splits(20)]
    with pytest.raises(MusicSSLError, match="manifest.jsonl: no instruments tag"):
        instrument_task(_write(tmp_path / "none", rows))


def test_pitch_needs_monophonic_clips_in_every_split(tmp_path: Path) -> None:
    def mono(clip_id: str) -> dict:
        return {"monophonic": True, "f0": f"f0/{clip_id}.npy", "f0_hop": 0.01}

    rows = [_row(c, s, **(mono(c) if c.endswith("00") else {})) for c, s in _splits(2)]
    task = pitch_task(_write(tmp_path / "ok", rows))
    assert [e.name for e in task.examples] == ["train-00.wav", "valid-00.wav", "test-00.wav"]
    assert all(np.all(e.target == 220.0) for e in task.examples)
    rows = [_row(c, s, **(mono(c) if s != "valid" else {})) for c, s in _splits(2)]
    with pytest.raises(MusicSSLError, match="manifest.jsonl.*monophonic.*valid"):
        pitch_task(_write(tmp_path / "no-valid", rows))
    rows = [_row(c, s, monophonic=True) for c, s in _splits(1)]
    with pytest.raises(MusicSSLError, match="manifest.jsonl.*train-00 has no 'f0'"):
        pitch_task(_write(tmp_path / "no-f0", rows))


def test_same_piece_keeps_lone_clips_as_distractors_only(tmp_path: Path) -> None:
    rows = [_row(c, s) for c, s in _splits(1)] + [
        _row("p-00", "test", piece_id="p"),
        _row("p-01", "test", piece_id="p"),
        _row("q-00", "test", piece_id="q"),
    ]
    task = same_piece_task(_write(tmp_path, rows))
    assert [e.name for e in task.split("query")] == ["p-00.wav", "p-01.wav"]
    assert [e.name for e in task.split("gallery")] == [
        "test-00.wav",
        "p-00.wav",
        "p-01.wav",
        "q-00.wav",
    ]
    lone = [_row(c, s) for c, s in _splits(2)]
    with pytest.raises(MusicSSLError, match="no piece has two test clips"):
        same_piece_task(_write(tmp_path / "lone", lone))


def test_errors_name_the_manifest_and_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(MusicSSLError, match=r"manifest\.jsonl: no such manifest"):
        style_task(tmp_path)
    for name in TASKS:
        with pytest.raises(MusicSSLError, match="manifest.jsonl"):
            TASKS[name](tmp_path)
    rows = [_row(c, s) for c, s in _splits(1)]
    del rows[1]["key"]
    folder = _write(tmp_path / "no-key", rows)
    with pytest.raises(MusicSSLError, match=r"manifest\.jsonl:2: no 'key'.*key task"):
        key_task(folder)
    style_task(folder)  # the other fields are all there
    rows = [_row(c, s, key="H major" if c == "test-00" else "C major") for c, s in _splits(1)]
    with pytest.raises(MusicSSLError, match="test-00 has key 'H major'"):
        key_task(_write(tmp_path / "bad-key", rows))
    rows = [_row(c, s) for c, s in _splits(1)]
    folder = _write(tmp_path / "no-audio", rows)
    (folder / "audio" / "valid-00.wav").unlink()
    with pytest.raises(MusicSSLError, match="valid-00: no audio file"):
        style_task(folder)
    rows = [_row(c, s) for c, s in _splits(1)] + [_row("x", "holdout")]
    with pytest.raises(MusicSSLError, match="split 'holdout'"):
        style_task(_write(tmp_path / "bad-split", rows))
