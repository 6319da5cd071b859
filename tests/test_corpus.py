import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from musicssl.corpus import index_folder
from musicssl.errors import MusicSSLError
from musicssl.manifest import read_manifest
from musicssl.splits import hash_split

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


def test_a_killed_index_goes_on_from_the_files_it_had_decoded(
    folder: Path, tmp_path: Path, monkeypatch
):
    from musicssl import audio, index_rows

    out, real_check, calls = tmp_path / "m.jsonl", audio.check, []

    def killed_at_the_fourth(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_check(path, *args, **kwargs)

    monkeypatch.setattr(index_rows, "_SAVE_SECONDS", 0.0)  # saved after every file
    monkeypatch.setattr(audio, "check", killed_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        index_folder(folder, out=out, workers=1, progress=False)
    assert not out.exists() and len(_read(tmp_path / ".m.jsonl.partial")) == 3
    monkeypatch.setattr(audio, "check", real_check)
    summary = index_folder(folder, out=out, workers=1, progress=False)
    assert (summary.reused, summary.decoded) == (3, 5)  # eight audio files in all
    assert not (tmp_path / ".m.jsonl.partial").exists()
    index_folder(folder, out=tmp_path / "whole.jsonl", workers=1, progress=False)
    assert _read(out) == _read(tmp_path / "whole.jsonl")  # as an index never killed


def test_reindex_decodes_only_new_files(folder: Path, tmp_path: Path, write_audio):
    out = tmp_path / "m.jsonl"
    index_folder(folder, out=out, progress=False)
    write_audio("music/d.wav", tone(550, sr=16000, seconds=0.5), 16000)
    summary = index_folder(folder, out=out, progress=False)
    assert (summary.decoded, summary.reused) == (1, 8)
    assert len(_read(out)) == 4
    # The default bad-files report sits beside the manifest.
    assert len(_read(tmp_path / "m.bad.jsonl")) == 5
    # A row of an older manifest, without the samples' digest, is decoded once more to get it.
    rows = _read(out)
    digest = rows[0].pop("samples_sha256")
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    summary = index_folder(folder, out=out, progress=False)
    assert (summary.decoded, summary.reused) == (1, 8)
    assert _read(out)[0]["samples_sha256"] == digest


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


@pytest.fixture
def pieces(tmp_path: Path) -> Path:
    """Two takes each of ten pieces in two folders, laid out as the built-in corpus."""
    root = tmp_path / "corpus"
    rows = []
    for number in range(10):
        for take in range(2):
            name = f"{'ab'[number % 2]}/piece{number}-{take:02d}.wav"
            signal = tone(200 + 20 * number + take, sr=8000, seconds=0.3)
            path = root / "audio" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            import soundfile as sf

            sf.write(str(path), signal, 8000)
            split = ("train", "valid", "test")[number % 3]
            rows.append({"path": f"audio/{name}", "split": split, "piece": number})
    (root / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def _splits(manifest: Path) -> dict[str, str | None]:
    return {row["path"].split("audio/")[-1]: row.get("split") for row in _read(manifest)}


def test_splits_come_from_the_manifest_beside_the_folder(pieces: Path, tmp_path: Path):
    summary = index_folder(pieces / "audio", out=tmp_path / "m.jsonl", progress=False)
    got = _splits(tmp_path / "m.jsonl")
    assert got["a/piece0-00.wav"] == got["a/piece0-01.wav"] == "train"
    assert got["b/piece1-01.wav"] == "valid" and got["a/piece2-00.wav"] == "test"
    # pieces 0, 3, 6, 9 train; 1, 4, 7 valid; 2, 5, 8 test; two takes each
    assert summary.splits == {"train": 8, "valid": 6, "test": 6}
    assert "splits: train 8, valid 6, test 6" in str(summary)
    # Labels of the manifest are not carried, only the split.
    assert "piece" not in _read(tmp_path / "m.jsonl")[0]


def test_a_copy_of_the_corpus_made_of_links_keeps_its_splits(pieces: Path, tmp_path: Path):
    copy = tmp_path / "copy"  # as `cp -rs corpus copy` makes it: folders, and a link per file
    for file in (pieces / "audio").rglob("*.wav"):
        link = copy / "audio" / file.relative_to(pieces / "audio")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(file)
    shutil.copy(pieces / "manifest.jsonl", copy / "manifest.jsonl")
    summary = index_folder(copy / "audio", out=tmp_path / "m.jsonl", progress=False)
    assert summary.splits == {"train": 8, "valid": 6, "test": 6}
    assert _splits(tmp_path / "m.jsonl") == _splits(copy / "manifest.jsonl")


def test_splits_from_a_table_with_aliases(pieces: Path, tmp_path: Path):
    table = tmp_path / "splits.csv"
    table.write_text(
        "split,path\nval,a/piece0-00.wav\ntraining,a/piece0-01.wav\ntest,nowhere.wav\n"
    )
    summary = index_folder(pieces / "audio", out=tmp_path / "m.jsonl", splits=table, progress=False)
    got = _splits(tmp_path / "m.jsonl")
    assert got["a/piece0-00.wav"] == "valid" and got["a/piece0-01.wav"] == "train"
    assert sum(split is None for split in got.values()) == 18
    assert summary.splits == {"train": 1, "valid": 1, "": 18}
    assert "train 1, valid 1, 18 with no split" in str(summary)
    # A tab-separated table whose paths are relative to the table's own folder.
    tsv = pieces / "audio" / "a" / "splits.tsv"
    tsv.write_text("path\tsplit\npiece2-00.wav\ttest\n")
    index_folder(pieces / "audio", out=tmp_path / "m2.jsonl", splits=tsv, progress=False)
    assert _splits(tmp_path / "m2.jsonl")["a/piece2-00.wav"] == "test"
    # Into the first manifest, it would take the two files of the first table out of their
    # splits (a later index could give them any): refused, the manifest kept.
    kept = (tmp_path / "m.jsonl").read_bytes()
    with pytest.raises(MusicSSLError, match=r"would move 2 files .*: valid -> no split\)"):
        index_folder(pieces / "audio", out=tmp_path / "m.jsonl", splits=tsv, progress=False)
    assert (tmp_path / "m.jsonl").read_bytes() == kept


def test_folders_named_as_splits_are_said_not_to_be_read_by_a_hash_split(
    pieces: Path, tmp_path: Path
):
    audio = pieces / "audio"
    plain = index_folder(audio, out=tmp_path / "plain.jsonl", split_by="parent", progress=False)
    assert "not read as splits" not in str(plain)
    (audio / "a").rename(audio / "train")
    (audio / "b").rename(audio / "Test")
    summary = index_folder(audio, out=tmp_path / "m.jsonl", split_by="parent", progress=False)
    assert (
        "note: folders named Test, train are not read as splits: --split-by parent hashes each "
        "group to a split whatever its name; to keep them, give each file its split in a "
        "--splits table"
    ) in str(summary)


def test_reindexing_never_moves_a_file_to_another_split(pieces: Path, tmp_path: Path):
    out = tmp_path / "m.jsonl"
    index_folder(pieces / "audio", out=out, split_by="parent", progress=False)
    before = out.read_bytes()
    with pytest.raises(MusicSSLError, match=r"m.jsonl: these splits would move \d+ files") as e:
        index_folder(pieces / "audio", out=out, split_by="file", progress=False)
    assert "-> " in str(e.value) and "another --out" in str(e.value)
    assert out.read_bytes() == before
    # The same grouping again, or a new manifest elsewhere, is fine.
    index_folder(pieces / "audio", out=out, split_by="parent", progress=False)
    assert out.read_bytes() == before
    index_folder(pieces / "audio", out=tmp_path / "other.jsonl", split_by="file", progress=False)


def test_a_renamed_file_keeps_the_split_of_its_bytes(pieces: Path, tmp_path: Path):
    out, audio = tmp_path / "m.jsonl", pieces / "audio"
    index_folder(audio, out=out, split_by="file", progress=False)
    before = _splits(out)
    # A name whose own hash gives another split than the file had.
    old = "a/piece0-00.wav"
    new = next(f"b/renamed{k}.wav" for k in range(999)
               if hash_split(f"renamed{k}.wav") != before[old])  # fmt: skip
    (audio / old).rename(audio / new)
    summary = index_folder(audio, out=out, split_by="file", progress=False)
    after = _splits(out)
    assert after[new] == before[old] and old not in after
    assert "1 file renamed, moved or added since the last index kept the split" in str(summary)
    # A table that puts the renamed file in another split is refused, as for a kept name.
    other = next(split for split in ("train", "valid", "test") if split != before[old])
    table = tmp_path / "splits.csv"
    rows = [f"{audio / name},{other if name == new else split}" for name, split in after.items()]
    table.write_text("path,split\n" + "\n".join(rows) + "\n")
    kept = out.read_bytes()
    with pytest.raises(MusicSSLError, match=rf"would move 1 file out .*{new}: {before[old]} -> "):
        index_folder(audio, out=out, splits=table, progress=False)
    assert out.read_bytes() == kept


def test_a_renamed_and_grown_folder_stays_in_one_split_and_indexing_again_changes_nothing(
    pieces: Path, tmp_path: Path
):
    out, audio = tmp_path / "m.jsonl", pieces / "audio"
    index_folder(audio, out=out, split_by="parent", progress=False)
    before = _splits(out)
    # A new folder name whose own hash gives another split than the folder had.
    new = next(
        f"a-remaster{k}"
        for k in range(999)
        if hash_split(f"a-remaster{k}") != before["a/piece0-00.wav"]
    )
    (audio / "a").rename(audio / new)
    (audio / new / "bonus.wav").write_bytes(
        (audio / "b" / "piece1-00.wav").read_bytes()[:-2] + b"\x01\x02"
    )
    summary = index_folder(audio, out=out, split_by="parent", progress=False)
    after = _splits(out)
    assert {after[name] for name in after if name.startswith(new)} == {before["a/piece0-00.wav"]}
    assert "11 files renamed, moved or added since the last index kept the split" in str(summary)
    kept = out.read_bytes()
    again = index_folder(audio, out=out, split_by="parent", progress=False)
    assert out.read_bytes() == kept and "kept the split" not in str(again)
    # Another kind of split is still refused: it would move listed files.
    with pytest.raises(MusicSSLError, match="would move"):
        index_folder(audio, out=out, split_by="file", progress=False)


def test_malformed_splits_are_refused_in_one_line(pieces: Path, tmp_path: Path):
    out = tmp_path / "m.jsonl"
    cases = {
        "no_columns.csv": ("file,part\na.wav,train\n", "needs 'path' and 'split' columns"),
        "empty_split.csv": (
            "path,split\na/piece0-00.wav,\n",
            "empty_split.csv:2: the split is empty",
        ),
        "twice.csv": (
            "path,split\na/piece0-00.wav,train\na/piece0-00.wav,test\n",
            "twice.csv:3: a/piece0-00.wav is listed in splits 'train' and 'test'",
        ),
        "typo.csv": (
            "path,split\na/piece0-00.wav,tset\n",
            "typo.csv:2: split 'tset' is not train, valid or test",
        ),
    }
    for name, (text, message) in cases.items():
        (pieces / "audio" / name).write_text(text)
        with pytest.raises(MusicSSLError, match=message) as caught:
            index_folder(pieces / "audio", out=out, splits=pieces / "audio" / name)
        assert "\n" not in str(caught.value)
    with pytest.raises(MusicSSLError, match="give one of them"):
        index_folder(pieces / "audio", out=out, splits=pieces / "manifest.jsonl", split_by="parent")
    with pytest.raises(MusicSSLError, match="expected 'parent', 'file' or 'prefix:SEP'"):
        index_folder(pieces / "audio", out=out, split_by="folder")
    with pytest.raises(MusicSSLError, match="no such splits file"):
        index_folder(pieces / "audio", out=out, splits=tmp_path / "missing.csv")
    assert not out.exists()


def test_hash_split_keeps_groups_together_and_is_stable(pieces: Path, tmp_path: Path):
    summary = index_folder(
        pieces / "audio", out=tmp_path / "m.jsonl", split_by="prefix:-", progress=False
    )
    got = _splits(tmp_path / "m.jsonl")
    for number in range(10):
        folder = "ab"[number % 2]
        first, second = got[f"{folder}/piece{number}-00.wav"], got[f"{folder}/piece{number}-01.wav"]
        assert first == second == hash_split(f"piece{number}")
    assert sum(summary.splits.values()) == 20 and "" not in summary.splits
    assert not any("without '-'" in note for note in summary.split_notes)
    # A name without the separator is a group of its own, and the index says so.
    underscored = index_folder(
        pieces / "audio", out=tmp_path / "u.jsonl", split_by="prefix:_", progress=False
    )
    assert any(
        note.startswith("note: 20 file names without '_' (e.g. ")
        for note in underscored.split_notes
    )
    by_parent = index_folder(
        pieces / "audio", out=tmp_path / "p.jsonl", split_by="parent", progress=False
    )
    for name, split in _splits(tmp_path / "p.jsonl").items():
        assert split == hash_split(name.split("/")[0])  # the parent folder, relative to root
    assert sum(by_parent.splits.values()) == 20
    # The same group always gets the same split; over many groups the shares are 80/10/10.
    assert hash_split("piece3") == hash_split("piece3")
    shares = Counter(hash_split(f"group{number}") for number in range(20000))
    assert shares["train"] / 20000 == pytest.approx(0.8, abs=0.01)
    assert shares["valid"] / 20000 == pytest.approx(0.1, abs=0.01)
    assert shares["test"] / 20000 == pytest.approx(0.1, abs=0.01)


def test_reindex_keeps_splits(pieces: Path, tmp_path: Path):
    out = tmp_path / "m.jsonl"
    index_folder(pieces / "audio", out=out, split_by="file", progress=False)
    first = _splits(out)
    (pieces / "manifest.jsonl").unlink()  # no neighbour manifest: the previous index's splits
    again = index_folder(pieces / "audio", out=out, progress=False)
    assert _splits(out) == first and again.reused == 20
    assert again.split_source == f"the previous {out}"
    assert first == {name: hash_split(name) for name in first}
    other = tmp_path / "other.jsonl"  # new splits go to a new manifest
    index_folder(pieces / "audio", out=other, split_by="prefix:-", progress=False)
    assert _splits(other) == {name: hash_split(name[2:].split("-")[0]) for name in first}


def test_indexing_the_builtin_corpus_carries_its_splits(tiny_corpus: Path, tmp_path: Path):
    builtin = {row["path"]: row["split"] for row in _read(tiny_corpus / "manifest.jsonl")}
    summary = index_folder(tiny_corpus / "audio", out=tmp_path / "m.jsonl", progress=False)
    carried = {Path(row["path"]).name: row["split"] for row in _read(tmp_path / "m.jsonl")}
    assert carried == {Path(path).name: split for path, split in builtin.items()}
    assert summary.splits == dict(Counter(builtin.values()))
    assert summary.split_source == str((tiny_corpus / "manifest.jsonl").resolve())


def test_a_manifest_and_a_bad_files_report_never_replace_each_other(tmp_path: Path, write_audio):
    write_audio("a/one.wav", tone(440, sr=16000, seconds=1.0), 16000)
    (tmp_path / "a" / "broken.wav").write_bytes(b"")
    write_audio("b/two.wav", tone(220, sr=16000, seconds=1.0), 16000)
    index_folder(tmp_path / "a", out=tmp_path / "m.jsonl", progress=False)
    manifest, report = (tmp_path / "m.jsonl").read_text(), (tmp_path / "m.bad.jsonl").read_text()
    with pytest.raises(MusicSSLError, match="holds a manifest; refusing to overwrite it with the"):
        index_folder(tmp_path / "b", out=tmp_path / "n.jsonl", bad=tmp_path / "m.jsonl",
                     progress=False)  # fmt: skip
    with pytest.raises(MusicSSLError, match="holds a bad-files report; refusing to overwrite"):
        index_folder(tmp_path / "b", out=tmp_path / "m.bad.jsonl", bad=tmp_path / "x.jsonl",
                     progress=False)  # fmt: skip
    assert (tmp_path / "m.jsonl").read_text() == manifest
    assert (tmp_path / "m.bad.jsonl").read_text() == report


def test_labels_of_your_own_travel_from_a_table_into_the_rows_and_the_store(
    pieces: Path, tmp_path: Path
):
    from musicssl.pack import pack
    from musicssl.store import SampleStore

    labels = tmp_path / "labels.csv"
    labels.write_text(
        "path,caption,mood\n"
        "a/piece0-00.wav,a slow chorale,calm\n"
        f'{pieces / "audio" / "b/piece1-01.wav"},"a fast reel, two fiddles",\n'  # absolute
        "a/nowhere.wav,not here,sad\n"
    )
    out = tmp_path / "m.jsonl"
    summary = index_folder(pieces / "audio", out=out, labels=labels, progress=False)
    rows = {row["path"].split("audio/")[-1]: row for row in _read(out)}
    assert (rows["a/piece0-00.wav"]["caption"], rows["a/piece0-00.wav"]["mood"]) == (
        "a slow chorale",
        "calm",
    )
    assert rows["b/piece1-01.wav"]["caption"] == "a fast reel, two fiddles"
    assert "mood" not in rows["b/piece1-01.wav"]  # an empty cell sets nothing
    assert "caption" not in rows["a/piece0-01.wav"]
    assert summary.labels == f"labels: 2 of 20 files from {labels}: caption (2), mood (1)"
    assert rows["a/piece0-00.wav"]["split"] == "train"  # the splits as before
    # The store carries them, so the audio-text recipes and the fast probe read them.
    pack(out, out=tmp_path / "store", sr=8000, progress=False)
    store = {row["path"].split("audio/")[-1]: row for row in SampleStore(tmp_path / "store").rows}
    assert store["a/piece0-00.wav"]["caption"] == "a slow chorale"
    # A new table replaces the labels a row had; JSON lines keep their types.
    relabelled = tmp_path / "labels.jsonl"
    relabelled.write_text('{"path": "a/piece0-00.wav", "tags": ["choir", "slow"]}\n')
    index_folder(pieces / "audio", out=out, labels=relabelled, progress=False)
    row = next(r for r in _read(out) if r["path"].endswith("a/piece0-00.wav"))
    assert row["tags"] == ["choir", "slow"] and "caption" not in row and "mood" not in row
    # One table may give both: its split column is the splits', the others are labels.
    both = tmp_path / "both.csv"
    both.write_text("path,split,mood\na/piece0-00.wav,test,calm\nb/piece1-01.wav,valid,\n")
    summary = index_folder(pieces / "audio", out=tmp_path / "both.jsonl", splits=both,
                           labels=both, progress=False)  # fmt: skip
    rows = {row["path"].split("audio/")[-1]: row for row in _read(tmp_path / "both.jsonl")}
    assert (rows["a/piece0-00.wav"]["split"], rows["a/piece0-00.wav"]["mood"]) == ("test", "calm")
    assert rows["b/piece1-01.wav"]["split"] == "valid" and "mood" not in rows["b/piece1-01.wav"]
    assert summary.labels == f"labels: 1 of 20 files from {both}: mood (1)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "path,split\na/piece0-00.wav,train\n",
            r"column 'split' is one the index writes itself; "
            r"rename it \(or give the table as --splits too\)",
        ),
        ("name,caption\nx.wav,y\n", "needs a 'path' column"),
        ("path,caption\na/piece0-00.wav,x\na/piece0-00.wav,y\n", "a/piece0-00.wav is listed twice"),
    ],
)
def test_a_bad_labels_table_is_refused_before_any_work(
    pieces: Path, tmp_path: Path, text: str, message: str
):
    labels = tmp_path / "labels.csv"
    labels.write_text(text)
    with pytest.raises(MusicSSLError, match=message):
        index_folder(pieces / "audio", out=tmp_path / "m.jsonl", labels=labels, progress=False)
    assert not (tmp_path / "m.jsonl").exists()
