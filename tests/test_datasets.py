"""Tables and data-set loaders, each on a tiny fake copy of its layout written here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicssl.errors import MusicSSLError
from musicssl.evaluate.datasets import (
    DATASETS,
    canonical_key,
    giantsteps_key,
    gtzan,
    magnatagatune,
    mtg_jamendo,
    nsynth,
    table_task,
)
from musicssl.evaluate.datasets.gtzan import GTZAN_GENRES


def wav(path: Path) -> Path:
    """A 10 ms silent WAV (about 200 bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(80, dtype=np.float32), 8000)
    return path


def placeholder(path: Path) -> Path:
    """An empty file with an audio name: the loaders check existence, never decode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def by_name(task) -> dict[str, tuple[str, object]]:
    return {example.name: (example.split, example.target) for example in task.examples}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# canonical_key


def test_canonical_key_respells_enharmonics_and_case():
    assert canonical_key("Eb minor") == "Eb minor"
    assert canonical_key("d# minor") == "Eb minor"
    assert canonical_key("Gb major") == "F# major"
    assert canonical_key("a#   Minor") == "Bb minor"
    assert canonical_key("C major") == "C major"
    for bad in ("X", "G minor/major", "F / F# minor", "H major", "C dorian", "C other", "-"):
        with pytest.raises(MusicSSLError):
            canonical_key(bad)
    with pytest.raises(MusicSSLError, match=r"key 'H major': not one of the 24 .* 'F# minor'\)$"):
        canonical_key("H major")  # in our words, not mir_eval's


# --------------------------------------------------------------------------------------------
# table_task


def test_table_multiclass_with_split_column(tmp_path):
    for name in ("a.wav", "b.wav", "sub/c.wav", "d.wav"):
        wav(tmp_path / name)
    table = write(
        tmp_path / "genres.csv",
        "path,label,split,comment\n"
        "a.wav,rock,train,x\n"
        "./b.wav, jazz ,Training,\n"
        "sub/c.wav,rock,validation,\n"
        "d.wav,jazz,TEST,\n",
    )
    task = table_task(table)
    assert task.kind == "multiclass"
    assert task.name == "genres"
    assert task.root == tmp_path
    assert task.classes == ("jazz", "rock")
    assert by_name(task) == {
        "a.wav": ("train", "rock"),
        "b.wav": ("train", "jazz"),
        "sub/c.wav": ("valid", "rock"),
        "d.wav": ("test", "jazz"),
    }
    assert task.split_sizes() == {"train": 2, "valid": 1, "test": 1}


def test_table_names_a_file_in_either_unicode_form_and_refuses_latin1_text(tmp_path):
    import unicodedata

    composed = unicodedata.normalize("NFC", "été.wav")
    decomposed = unicodedata.normalize("NFD", "été.wav")
    for name in (composed, "b.wav", "c.wav"):
        wav(tmp_path / name)
    rows = f"{decomposed},x,train\nb.wav,y,valid\nc.wav,x,test\n"  # typed on a Mac
    task = table_task(write(tmp_path / "t.csv", "path,label,split\n" + rows))
    assert by_name(task)[composed] == ("train", "x")
    (tmp_path / "latin.csv").write_bytes(b"path,label\ncaf\xe9.wav,x\n")
    with pytest.raises(MusicSSLError, match=r"latin.csv: not a text table \(not UTF-8\)"):
        table_task(tmp_path / "latin.csv")


def test_table_numbers_give_regression_unless_told_multiclass(tmp_path, capsys):
    for name in ("a.wav", "b.wav", "c.wav"):
        wav(tmp_path / name)
    table = write(
        tmp_path / "t.csv", "path,label,split\na.wav,1,train\nb.wav,2.5,valid\nc.wav,1,test\n"
    )
    task = table_task(table, name="loudness")
    assert (task.name, task.kind, task.classes) == ("loudness", "regression", ())
    assert [example.target for example in task.examples] == [1.0, 2.5, 1.0]
    forced = table_task(table, kind="multiclass")
    assert "class '2.5' has examples only in the valid split" in capsys.readouterr().err
    assert forced.classes == ("1", "2.5")
    with pytest.raises(MusicSSLError, match="multiclass or regression"):
        table_task(table, kind="multilabel")


def test_table_multilabel_csv_and_jsonl_agree(tmp_path, capsys):
    for name in ("a.wav", "b.wav", "c.wav"):
        wav(tmp_path / "audio" / name)
    csv_table = write(
        tmp_path / "tags.csv",
        "path,labels,split\n"
        "a.wav,piano; voice,train\n"
        'b.wav,"drums;;piano",valid\n'
        "c.wav,voice,test\n",
    )
    jsonl_table = write(
        tmp_path / "tags.jsonl",
        '{"path": "a.wav", "labels": ["voice", "piano"], "split": "train"}\n'
        "\n"
        '{"path": "b.wav", "labels": ["piano", "drums", "piano"], "split": "valid"}\n'
        '{"path": "c.wav", "labels": ["voice"], "split": "test"}\n',
    )
    from_csv = table_task(csv_table, root=tmp_path / "audio")
    assert "class 'drums' has examples only in the valid split" in capsys.readouterr().err
    from_jsonl = table_task(jsonl_table, root=tmp_path / "audio")
    assert "'drums'" in capsys.readouterr().err
    for task in (from_csv, from_jsonl):
        assert task.kind == "multilabel"
        assert task.classes == ("drums", "piano", "voice")
        assert by_name(task) == {
            "a.wav": ("train", ("piano", "voice")),
            "b.wav": ("valid", ("drums", "piano")),
            "c.wav": ("test", ("voice",)),
        }


def test_table_key_and_tempo(tmp_path, capsys):
    for name in ("a.wav", "b.wav", "c.wav"):
        wav(tmp_path / name)
    keys = write(
        tmp_path / "keys.csv",
        "path,key,split\na.wav,d# minor,train\nb.wav,Eb minor,valid\nc.wav,C major,test\n",
    )
    task = table_task(keys)
    assert "class 'C major' has examples only in the test split" in capsys.readouterr().err
    assert task.kind == "key"
    assert task.classes == ("C major", "Eb minor")
    assert [example.target for example in task.examples] == ["Eb minor", "Eb minor", "C major"]
    bad = write(tmp_path / "bad.csv", "path,key,split\na.wav,C major,train\nb.wav,Cm,test\n")
    with pytest.raises(MusicSSLError, match=r"bad\.csv, line 3: key 'Cm'"):
        table_task(bad)

    tempi = write(
        tmp_path / "tempi.jsonl",
        '{"path": "a.wav", "tempo": 120, "split": "train"}\n'
        '{"path": "b.wav", "tempo": 95.5, "split": "val"}\n'
        '{"path": "c.wav", "tempo": "60", "split": "test"}\n',
    )
    task = table_task(tempi)
    assert task.kind == "tempo"
    assert [example.target for example in task.examples] == [120.0, 95.5, 60.0]
    negative = write(tmp_path / "neg.jsonl", '{"path": "a.wav", "tempo": -3, "split": "train"}\n')
    with pytest.raises(MusicSSLError, match=r"neg\.jsonl, line 1"):
        table_task(negative)


def test_table_hash_split_is_deterministic_and_independent_of_row_order(tmp_path):
    names = [f"clip{index:02d}.wav" for index in range(20)]
    for name in names:
        wav(tmp_path / name)
    rows = [f"{name},same" for name in names]
    forward = write(tmp_path / "forward.csv", "path,label\n" + "\n".join(rows) + "\n")
    backward = write(tmp_path / "backward.csv", "path,label\n" + "\n".join(rows[::-1]) + "\n")
    first = table_task(forward)
    # 20 paths: 3 valid (15 % of 20), 3 test, 14 train.
    assert first.split_sizes() == {"train": 14, "valid": 3, "test": 3}
    assert by_name(table_task(forward)) == by_name(first)
    assert by_name(table_task(backward)) == by_name(first)


def test_table_group_keeps_items_together(tmp_path):
    rows = []
    for group in range(10):
        for take in range(2):
            wav(tmp_path / f"g{group}_{take}.wav")
            rows.append(f"g{group}_{take}.wav,{'xy'[take]},piece{group}")
    table = write(tmp_path / "grouped.csv", "path,label,group\n" + "\n".join(rows) + "\n")
    task = table_task(table)
    split = dict((name, split) for name, (split, _) in by_name(task).items())
    for group in range(10):
        assert split[f"g{group}_0.wav"] == split[f"g{group}_1.wav"]
    # 10 groups: 2 valid (1.5 rounded half up), 2 test, 6 train; two rows per group.
    assert task.split_sizes() == {"train": 12, "valid": 4, "test": 4}


def test_table_absolute_paths(tmp_path):
    for name in ("a.wav", "b.wav", "c.wav"):
        wav(tmp_path / "music" / name)
    outside = wav(tmp_path / "elsewhere" / "d.wav")
    table = write(
        tmp_path / "music" / "t.csv",
        f"path,label,split\n{tmp_path / 'music' / 'a.wav'},x,train\nb.wav,x,valid\nc.wav,x,test\n",
    )
    task = table_task(table)
    assert [example.name for example in task.examples] == ["a.wav", "b.wav", "c.wav"]
    escaping = write(
        tmp_path / "music" / "u.csv", f"path,label,split\n{outside},x,train\nb.wav,x,test\n"
    )
    with pytest.raises(MusicSSLError, match=r"u\.csv, line 2: .*not under the root"):
        table_task(escaping)
    relative_escape = write(tmp_path / "music" / "v.csv", "path,label\n../elsewhere/d.wav,x\n")
    with pytest.raises(MusicSSLError, match="line 2: .*not under the root"):
        table_task(relative_escape)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file,label\na.wav,x\n", r"no 'path' column \(columns: file, label\)"),
        (
            "path,genre\na.wav,x\n",
            r"exactly one label column .*found: none; its columns: path, genre",
        ),
        ("path,label,key\na.wav,x,C major\n", r"found: label, key"),
        ("path,label,split\na.wav,x,train\nb.wav,,test\n", r"line 3: empty label"),
        ("path,label,split\na.wav,x,train\nb.wav,y,holdout\n", r"line 3: unknown split 'holdout'"),
        ("path,label,split\na.wav,x,train\nb.wav,y,\n", r"line 3: unknown split ''"),
        ("path,label,split\na.wav,x,train\n./a.wav,y,test\n", r"line 3: a\.wav already .*line 2"),
        ("path,label,split\na.wav,x,train\nz.wav,y,test\n", r"1 audio file.*z\.wav \(line 3\)"),
        ("path,label\na.wav,x\nb.wav,y\n", r"fewer than three paths"),
        (
            "path,label,split\na.wav,x,train\nb.wav,x,test\n",
            r"no rows in the valid split \(split: .*; train 1, valid 0, test 1\)",
        ),
        ("path,label,split\na.wav,x,train,extra\n", r"line 2: more values than columns"),
    ],
)
def test_table_errors_name_file_and_line(tmp_path, text, message):
    for name in ("a.wav", "b.wav"):
        wav(tmp_path / name)
    table = write(tmp_path / "table.csv", text)
    with pytest.raises(MusicSSLError, match=message) as error:
        table_task(table)
    assert "table.csv" in str(error.value)


def test_table_format_and_jsonl_errors(tmp_path):
    wav(tmp_path / "a.wav")
    with pytest.raises(MusicSSLError, match=r"unknown table format '\.txt'"):
        table_task(write(tmp_path / "t.txt", "path\tlabel\n"))
    with pytest.raises(MusicSSLError, match=r"t\.jsonl, line 2: not JSON"):
        table_task(write(tmp_path / "t.jsonl", '{"path": "a.wav", "label": "x"}\n{oops\n'))
    with pytest.raises(MusicSSLError, match=r"u\.jsonl, line 1: expected a JSON object"):
        table_task(write(tmp_path / "u.jsonl", '["a.wav", "x"]\n'))
    with pytest.raises(MusicSSLError, match="table not found"):
        table_task(tmp_path / "absent.csv")


def test_table_warns_about_a_class_in_one_split(tmp_path, capsys):
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        wav(tmp_path / name)
    table = write(
        tmp_path / "t.csv",
        "path,label,split\na.wav,x,train\nb.wav,x,valid\nc.wav,x,test\nd.wav,rare,test\n",
    )
    task = table_task(table)
    assert len(task.extra["warnings"]) == 1
    err = capsys.readouterr().err
    assert err == f"note: {table}: class 'rare' has examples only in the test split\n"

    grouped = write(
        tmp_path / "g.csv",
        "path,label,split,group\na.wav,x,train,p1\nb.wav,x,valid,p2\nc.wav,x,test,p1\n",
    )
    table_task(grouped)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"note: {grouped}: group(s) in several splits: p1"]


# --------------------------------------------------------------------------------------------
# GTZAN


def fake_gtzan(folder: Path, *, per_genre: int = 10) -> None:
    for genre in GTZAN_GENRES:
        for index in range(per_genre):
            wav(folder / genre / f"{genre}.{index:05d}.wav")
    write(folder / "blues" / "notes.txt", "not audio")
    wav(folder / "blues" / "other.wav")


def test_gtzan_random_split_is_stratified(tmp_path):
    fake_gtzan(tmp_path / "genres_original")
    task = gtzan(tmp_path)
    assert (task.name, task.kind, task.root) == ("gtzan_genre", "multiclass", tmp_path)
    assert task.classes == tuple(sorted(GTZAN_GENRES))
    assert task.split_sizes() == {"train": 80, "valid": 10, "test": 10}
    for genre in GTZAN_GENRES:
        splits = [e.split for e in task.examples if e.target == genre]
        assert (splits.count("train"), splits.count("valid"), splits.count("test")) == (8, 1, 1)
    targets = by_name(task)
    assert targets["genres_original/jazz/jazz.00003.wav"][1] == "jazz"
    assert "genres_original/blues/other.wav" not in targets
    assert by_name(gtzan(tmp_path)) == targets


def test_gtzan_genre_folders_directly_under_root(tmp_path):
    fake_gtzan(tmp_path, per_genre=3)
    task = gtzan(tmp_path)
    assert task.split_sizes() == {"train": 10, "valid": 10, "test": 10}
    assert "rock/rock.00002.wav" in by_name(task)


def test_gtzan_filtered_lists(tmp_path):
    fake_gtzan(tmp_path / "genres_original", per_genre=3)
    write(tmp_path / "train_filtered.txt", "blues/blues.00000.wav\nrock/rock.00001.wav\n\n")
    write(tmp_path / "valid_filtered.txt", "jazz/jazz.00002.wav\njazz/jazz.00054.wav\n")
    write(tmp_path / "test_filtered.txt", "pop/pop.00000.wav\n")
    task = gtzan(tmp_path)
    assert by_name(task) == {
        "genres_original/blues/blues.00000.wav": ("train", "blues"),
        "genres_original/rock/rock.00001.wav": ("train", "rock"),
        "genres_original/jazz/jazz.00002.wav": ("valid", "jazz"),
        "genres_original/pop/pop.00000.wav": ("test", "pop"),
    }
    assert task.classes == ("blues", "jazz", "pop", "rock")
    assert task.left_out == "1 left out (clips of the filtered lists not in the folder): jazz.00054"
    # More than one clip in a hundred absent: the archive is likely not wholly unpacked.
    write(tmp_path / "test_filtered.txt", "pop/pop.00000.wav\npop/pop.00007.wav\n")
    wholly = r"2 of the 6 clips .* not in the folder \(jazz.00054, pop.00007\); is the archive"
    with pytest.raises(MusicSSLError, match=wholly):
        gtzan(tmp_path)

    write(tmp_path / "test_filtered.txt", "pop/pop.00000.wav\nblues/blues.00000.wav\n")
    with pytest.raises(MusicSSLError, match=r"test_filtered\.txt: blues\.00000 is also in"):
        gtzan(tmp_path)
    (tmp_path / "test_filtered.txt").unlink()
    with pytest.raises(MusicSSLError, match=r"test_filtered\.txt; the filtered split needs"):
        gtzan(tmp_path)


def test_what_a_loader_left_out_is_said_in_the_terminal_and_the_results(tmp_path, capsys):
    from musicssl.evaluate.run import evaluate

    root = tmp_path / "gtzan"
    fake_gtzan(root / "genres_original", per_genre=4)
    write(root / "train_filtered.txt", "blues/blues.00000.wav\nblues/blues.00001.wav\n"
          "rock/rock.00000.wav\nrock/rock.00001.wav\n")  # fmt: skip
    write(root / "valid_filtered.txt", "blues/blues.00002.wav\nrock/rock.00002.wav\n"
          "jazz/jazz.00054.wav\n")  # fmt: skip
    write(root / "test_filtered.txt", "blues/blues.00003.wav\nrock/rock.00003.wav\n")
    results = evaluate("baseline:mfcc", tasks=[f"gtzan={root}"], seeds=1, baselines=[],
                       out=tmp_path / "out", cache=tmp_path / "cache", progress=False)  # fmt: skip
    said = "1 left out (clips of the filtered lists not in the folder): jazz.00054"
    assert results.tasks["gtzan_genre"].note == said
    assert f"note: task gtzan_genre: {said}" in capsys.readouterr().err
    assert said in (tmp_path / "out" / "report.md").read_text()


def test_gtzan_lists_kept_elsewhere_and_a_folder_named_with_a_quoted_tilde_or_a_comma(
    tmp_path, monkeypatch
):
    from musicssl.evaluate.task_specs import resolve_tasks

    root = tmp_path / "gtzan, 2015"
    fake_gtzan(root / "genres_original", per_genre=2)
    for split, clip in (("train", "blues.00000"), ("valid", "rock.00000"), ("test", "pop.00001")):
        write(root / "split" / f"{split}_filtered.txt", f"{clip.split('.')[0]}/{clip}.wav\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    (task,) = resolve_tasks(["gtzan=~/gtzan, 2015,lists=~/gtzan, 2015/split"], corpus=tmp_path)
    assert by_name(task) == {
        "genres_original/blues/blues.00000.wav": ("train", "blues"),
        "genres_original/rock/rock.00000.wav": ("valid", "rock"),
        "genres_original/pop/pop.00001.wav": ("test", "pop"),
    }
    assert task.extra["split"] == "filtered"
    with pytest.raises(MusicSSLError, match=r"lists=.*: no test_filtered.txt there"):
        resolve_tasks([f"gtzan={root},lists={tmp_path}"], corpus=tmp_path)


def test_data_index_takes_a_data_sets_own_split_so_its_test_clips_are_never_pretrained_on(
    tmp_path, capsys
):
    from musicssl.cli import main
    from musicssl.manifest import read_manifest

    root = tmp_path / "gtzan"
    fake_gtzan(root / "genres_original", per_genre=10)  # and blues/other.wav, in no split
    rng = np.random.default_rng(0)
    for path in root.rglob("*.wav"):  # indexing reads audio: silence would be a bad file
        sf.write(str(path), rng.uniform(-0.3, 0.3, 800).astype(np.float32), 8000)
    manifest = tmp_path / "gtzan.jsonl"
    assert main(["data", "index", str(root), "--out", str(manifest), "--splits",
                 f"gtzan={root}"]) == 0  # fmt: skip
    said = capsys.readouterr().out
    expected = {example.name: example.split for example in gtzan(root).examples}
    rows = {row["path"]: row.get("split") for row in read_manifest(manifest)}
    assert rows == {**{f"gtzan/{name}": split for name, split in expected.items()},
                    "gtzan/genres_original/blues/other.wav": None}  # fmt: skip
    assert f"splits: train 80, valid 10, test 10, 1 with no split (from gtzan={root})" in said
    assert f"note: 1 file under {root} not in the split of gtzan={root}: pretraining " in said
    assert main(["data", "index", str(root), "--out", str(tmp_path / "m2.jsonl"), "--splits",
                 f"gtzan={root},split=1"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert f"--splits gtzan={root},split=1: gtzan has no option 'split'" in err
    assert not (tmp_path / "m2.jsonl").exists()


def test_gtzan_wrong_layout(tmp_path):
    for genre in GTZAN_GENRES[:-1]:
        wav(tmp_path / "genres_original" / genre / f"{genre}.00000.wav")
    with pytest.raises(MusicSSLError, match=r"missing under genres_original: rock\)"):
        gtzan(tmp_path)
    # The folder with most genres is the one meant, whatever its name.
    (tmp_path / "genres_original").rename(tmp_path / "genres")
    (tmp_path / "genres" / "hiphop").rename(tmp_path / "genres" / "hip-hop")
    with pytest.raises(MusicSSLError, match=r"missing under genres: hiphop, rock\)"):
        gtzan(tmp_path)
    (tmp_path / "genres").rename(tmp_path / "Data")
    (tmp_path / "Data" / "genres_original").mkdir()
    with pytest.raises(MusicSSLError, match=r"the genre folders are under Data/; give .*/Data"):
        gtzan(tmp_path)


# --------------------------------------------------------------------------------------------
# MagnaTagATune


def fake_mtt(root: Path, clips: dict[str, set[int]], *, audio: Path | None = None) -> None:
    """annotations_final.csv with 52 tags tag00..tag51 (quoted, tab-separated, as shipped)."""
    tags = [f"tag{index:02d}" for index in range(52)]
    lines = ["\t".join(f'"{field}"' for field in ["clip_id", *tags, "mp3_path"])]
    for clip_id, (mp3_path, on) in enumerate(clips.items(), start=2):
        values = ["1" if index in on else "0" for index in range(52)]
        lines.append("\t".join(f'"{field}"' for field in [str(clip_id), *values, mp3_path]))
    write(root / "annotations_final.csv", "\n".join(lines) + "\n")


MTT_CLIPS = {
    "0/a.mp3": set(range(50)),  # every tag00..tag49
    "b/b.mp3": {0, 1},
    "c/c.mp3": {1, 50},
    "d/d.mp3": set(range(2, 50)),
    "f/e.mp3": {51},  # no top-50 tag: dropped
    "e/f.mp3": set(),  # no tag at all: dropped
    "0/g.mp3": {5},
}


@pytest.mark.parametrize("in_mp3_folder", [False, True])
def test_magnatagatune_top50_and_folder_split(tmp_path, in_mp3_folder):
    fake_mtt(tmp_path, MTT_CLIPS)
    audio = tmp_path / "mp3" if in_mp3_folder else tmp_path
    for name in ("0/a.mp3", "b/b.mp3", "c/c.mp3", "d/d.mp3", "0/g.mp3"):  # dropped ones absent
        placeholder(audio / name)
    task = magnatagatune(tmp_path)
    # Counts: tag00 2, tag01 3, tag02..tag49 2 (tag05 3), tag50 1, tag51 1: top 50 = tag00..49.
    tags = tuple(f"tag{index:02d}" for index in range(50))
    assert (task.kind, task.root, task.classes) == ("multilabel", audio, tags)
    assert by_name(task) == {
        "0/a.mp3": ("train", tags),
        "b/b.mp3": ("train", ("tag00", "tag01")),
        "c/c.mp3": ("valid", ("tag01",)),
        "d/d.mp3": ("test", tags[2:]),
        "0/g.mp3": ("train", ("tag05",)),
    }
    assert task.left_out == "2 clips with none of the 50 tags left out, as the usual split does"


def test_magnatagatune_errors(tmp_path):
    with pytest.raises(MusicSSLError, match=r"annotations_final\.csv: not found"):
        magnatagatune(tmp_path)
    fake_mtt(tmp_path, MTT_CLIPS)
    for name in ("0/a.mp3", "b/b.mp3", "c/c.mp3", "0/g.mp3"):
        placeholder(tmp_path / name)
    with pytest.raises(MusicSSLError, match=r"1 of the 5 audio files .*missing.*d/d\.mp3"):
        magnatagatune(tmp_path)
    fake_mtt(tmp_path, {"g/x.mp3": {0}})
    with pytest.raises(MusicSSLError, match=r"line 2: mp3_path 'g/x\.mp3' is not in 0-f/"):
        magnatagatune(tmp_path)
    write(tmp_path / "annotations_final.csv", "clip_id,tag,mp3_path\n")
    with pytest.raises(MusicSSLError, match="expected a tab-separated header"):
        magnatagatune(tmp_path)


# --------------------------------------------------------------------------------------------
# NSynth


def fake_nsynth(root: Path, split_notes: dict[str, list[tuple[str, int]]]) -> None:
    """NSynth folders; a note is (note_str, pitch) with the family and instrument in note_str."""
    for folder, notes in split_notes.items():
        examples = {}
        for note_str, pitch in notes:
            instrument = note_str.split("-")[0]
            examples[note_str] = {
                "note_str": note_str,
                "pitch": pitch,
                "velocity": 100,
                "instrument_str": instrument,
                "instrument_family_str": instrument.split("_")[0],
                "sample_rate": 16000,
            }
            wav(root / folder / "audio" / f"{note_str}.wav")
        write(root / folder / "examples.json", json.dumps(examples))


NSYNTH_NOTES = {
    "nsynth-train": [
        ("bass_synthetic_000-021-100", 21),
        ("guitar_acoustic_001-060-050", 60),
        ("keyboard_electronic_002-109-127", 109),
    ],
    "nsynth-valid": [("bass_synthetic_003-040-075", 40), ("guitar_acoustic_004-108-025", 108)],
    "nsynth-test": [("keyboard_acoustic_005-060-100", 60), ("bass_electronic_006-021-127", 21)],
}


def test_nsynth_instrument_family_and_pitch(tmp_path):
    fake_nsynth(tmp_path, NSYNTH_NOTES)
    family, pitch = nsynth(tmp_path)
    assert (family.name, family.kind, family.root) == ("nsynth_instrument", "multiclass", tmp_path)
    assert family.classes == ("bass", "guitar", "keyboard")
    assert by_name(family) == {
        "nsynth-train/audio/bass_synthetic_000-021-100.wav": ("train", "bass"),
        "nsynth-train/audio/guitar_acoustic_001-060-050.wav": ("train", "guitar"),
        "nsynth-train/audio/keyboard_electronic_002-109-127.wav": ("train", "keyboard"),
        "nsynth-valid/audio/bass_synthetic_003-040-075.wav": ("valid", "bass"),
        "nsynth-valid/audio/guitar_acoustic_004-108-025.wav": ("valid", "guitar"),
        "nsynth-test/audio/keyboard_acoustic_005-060-100.wav": ("test", "keyboard"),
        "nsynth-test/audio/bass_electronic_006-021-127.wav": ("test", "bass"),
    }
    assert pitch.name == "nsynth_pitch"
    assert pitch.classes == ("021", "040", "060", "108")  # 109 is above the piano range
    assert pitch.split_sizes() == {"train": 2, "valid": 2, "test": 2}
    assert by_name(pitch)["nsynth-valid/audio/guitar_acoustic_004-108-025.wav"] == ("valid", "108")
    assert pitch.left_out == "1 note outside MIDI 21-108 left out, as HEAR's nsynth_pitch does"
    assert family.left_out == ""

    family_small, pitch_small = nsynth(tmp_path, max_train=2)
    assert family_small.split_sizes() == {"train": 2, "valid": 2, "test": 2}
    kept = {example.name for example in family_small.split("train")}
    out_of_range = "nsynth-train/audio/keyboard_electronic_002-109-127.wav"
    assert {example.name for example in pitch_small.split("train")} == kept - {out_of_range}
    assert by_name(nsynth(tmp_path, max_train=2)[0]) == by_name(family_small)
    assert family_small.split("valid") == family.split("valid")
    # The same from --tasks: the loader's options after the folder, a number as a number.
    from musicssl.evaluate.task_specs import resolve_tasks

    given = resolve_tasks([f"nsynth={tmp_path},max_train=2"], corpus=tmp_path / "none")
    assert by_name(given[0]) == by_name(family_small)
    for spec, message in (
        (f"nsynth={tmp_path},max_train=two", "max_train takes a whole number, not 'two'"),
        (
            f"nsynth={tmp_path},maxtrain=2",
            "nsynth has no option 'maxtrain' (its options: max_train)",
        ),  # fmt: skip
        (f"gtzan={tmp_path},split=1", "gtzan has no option 'split' (its options: lists)"),
    ):
        with pytest.raises(MusicSSLError, match=re.escape(f"--tasks {spec}: {message}")):
            resolve_tasks([spec], corpus=tmp_path / "none")


def test_nsynth_without_train_splits_valid_by_instrument(tmp_path):
    notes = {key: value for key, value in NSYNTH_NOTES.items() if key != "nsynth-train"}
    notes["nsynth-valid"] = notes["nsynth-valid"] + [("bass_synthetic_003-041-075", 41)]
    fake_nsynth(tmp_path, notes)
    family, _ = nsynth(tmp_path)
    # Two instruments in nsynth-valid: one to train, one to valid (20 %, at least one).
    split_of_instrument = {}
    for example in family.examples:
        if example.split != "test":
            instrument = example.name.split("/")[-1].split("-")[0]
            split_of_instrument.setdefault(instrument, set()).add(example.split)
    assert sorted(split_of_instrument) == ["bass_synthetic_003", "guitar_acoustic_004"]
    assert sorted(next(iter(s)) for s in split_of_instrument.values()) == ["train", "valid"]
    assert family.split_sizes()["test"] == 2
    assert "no nsynth-train" in family.description


def test_nsynth_errors(tmp_path):
    fake_nsynth(tmp_path, {"nsynth-test": NSYNTH_NOTES["nsynth-test"]})
    with pytest.raises(MusicSSLError, match=r"nsynth-valid: not found; expected nsynth-valid/"):
        nsynth(tmp_path)
    fake_nsynth(tmp_path, NSYNTH_NOTES)
    (tmp_path / "nsynth-valid" / "audio" / "bass_synthetic_003-040-075.wav").unlink()
    with pytest.raises(MusicSSLError, match=r"1 of its 2 notes have no audio.*bass_synthetic_003"):
        nsynth(tmp_path)
    wav(tmp_path / "nsynth-valid" / "audio" / "bass_synthetic_003-040-075.wav")
    write(tmp_path / "nsynth-test" / "examples.json", "{")
    with pytest.raises(MusicSSLError, match=r"nsynth-test/examples\.json: not JSON"):
        nsynth(tmp_path)
    (tmp_path / "nsynth-test" / "examples.json").unlink()
    with pytest.raises(MusicSSLError, match=r"nsynth-test/examples\.json: not found"):
        nsynth(tmp_path)


# --------------------------------------------------------------------------------------------
# GiantSteps key

GIANTSTEPS_KEYS = {
    "1": "Eb minor",
    "2": "D major",
    "3": "Gb minor",
    "4": "Db major",
    "5": "A minor",
    "6": "F minor",
    "7": "Bb minor",
    "8": "?",  # unparseable: dropped
}


def fake_giantsteps(root: Path) -> None:
    for track, key in GIANTSTEPS_KEYS.items():
        write(root / "annotations" / "key" / f"{track}.LOFI.key", key)
        placeholder(root / "audio" / f"{track}.LOFI.mp3")


def test_giantsteps_key_alone(tmp_path):
    fake_giantsteps(tmp_path)
    task = giantsteps_key(tmp_path)
    assert (task.kind, task.root) == ("key", tmp_path)
    targets = {name: target for name, (_, target) in by_name(task).items()}
    assert targets == {
        "audio/1.LOFI.mp3": "Eb minor",
        "audio/2.LOFI.mp3": "D major",
        "audio/3.LOFI.mp3": "F# minor",
        "audio/4.LOFI.mp3": "C# major",
        "audio/5.LOFI.mp3": "A minor",
        "audio/6.LOFI.mp3": "F minor",
        "audio/7.LOFI.mp3": "Bb minor",
    }
    assert task.classes == tuple(sorted(set(targets.values())))
    # 7 clips: valid 1 (15 % of 7 = 1.05), test 1, train 5.
    assert task.split_sizes() == {"train": 5, "valid": 1, "test": 1}
    assert task.left_out == (
        "1 left out (annotations not of one major or minor key, or unsure): "
        "8.LOFI.key: '?' is not one major or minor key"
    )


def test_giantsteps_key_with_mtg_training_set(tmp_path):
    fake_giantsteps(tmp_path / "gs")
    mtg = tmp_path / "mtg"
    write(
        mtg / "annotations" / "annotations.txt",
        "ID\tMANUAL KEY\tC\n"
        "11\tD# minor\t2\n"
        "12\t-\t0\n"
        "13\tF minor / G# major\t2\n"
        "14\tA major\t1\n"
        "15\tC minor\t2\n"
        "16\tG major\t2\n"
        "17\tF# minor\t2\n",
    )
    for track in ("11", "12", "13", "14", "15", "16", "17"):
        placeholder(mtg / "audio" / f"{track}.LOFI.mp3")
    task = giantsteps_key(tmp_path / "gs", train_root=mtg)
    assert task.root == tmp_path
    sizes = task.split_sizes()
    # 4 usable MTG tracks: valid 1 (15 % of 4 = 0.6, at least one), train 3; GiantSteps: 7 test.
    assert sizes == {"train": 3, "valid": 1, "test": 7}
    mtg_targets = {
        name: target for name, (split, target) in by_name(task).items() if split != "test"
    }
    assert mtg_targets == {
        "mtg/audio/11.LOFI.mp3": "Eb minor",
        "mtg/audio/15.LOFI.mp3": "C minor",
        "mtg/audio/16.LOFI.mp3": "G major",
        "mtg/audio/17.LOFI.mp3": "F# minor",
    }
    assert all(name.startswith("gs/audio/") for name in by_name(task) if name not in mtg_targets)
    assert task.left_out.startswith("4 left out")  # GiantSteps "?" and MTG 12, 13, 14


def test_giantsteps_errors(tmp_path):
    with pytest.raises(MusicSSLError, match=r"annotations/key: not found; expected"):
        giantsteps_key(tmp_path)
    fake_giantsteps(tmp_path)
    (tmp_path / "audio" / "5.LOFI.mp3").unlink()
    with pytest.raises(MusicSSLError, match=r"1 annotated clip without an \.mp3 or \.wav: 5\.LOFI"):
        giantsteps_key(tmp_path)
    placeholder(tmp_path / "audio" / "5.LOFI.mp3")
    with pytest.raises(MusicSSLError, match=r"annotations\.txt: not found"):
        giantsteps_key(tmp_path, train_root=tmp_path / "nowhere")


# --------------------------------------------------------------------------------------------
# MTG-Jamendo

MTG_HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"
MTG_ROWS = {
    "train": [
        "track_0000241\tartist_000005\talbum_000033\t41/241.mp3\t340.1\tgenre---rock\n",
        "track_0000242\tartist_000005\talbum_000033\t42/242.mp3\t248.5\tgenre---rock"
        "\tinstrument---guitar\tmood/theme---dark\n",
    ],
    "validation": ["track_0001000\tartist_000010\talbum_000100\t00/1000.mp3\t60.0\tgenre---pop\n"],
    "test": [
        "track_0002001\tartist_000020\talbum_000200\t01/2001.mp3\t90.0\tinstrument---guitar"
        "\tgenre---pop\n"
    ],
}


def fake_mtg(root: Path, *, low: bool = False, subset: str = "top50tags") -> None:
    prefix = "autotagging" if subset == "all" else f"autotagging_{subset}"
    for split, rows in MTG_ROWS.items():
        write(root / "data/splits/split-0" / f"{prefix}-{split}.tsv", MTG_HEADER + "".join(rows))
        for row in rows:
            path = row.split("\t")[3]
            placeholder(
                root / "audio-low" / path.replace(".mp3", ".low.mp3")
                if low
                else root / "audio" / path
            )


@pytest.mark.parametrize("low", [False, True])
def test_mtg_jamendo(tmp_path, low):
    fake_mtg(tmp_path, low=low)
    task = mtg_jamendo(tmp_path)
    suffix = ".low.mp3" if low else ".mp3"
    assert (task.name, task.kind) == ("mtg_jamendo_top50tags", "multilabel")
    assert task.root == tmp_path / ("audio-low" if low else "audio")
    assert task.classes == (
        "genre---pop",
        "genre---rock",
        "instrument---guitar",
        "mood/theme---dark",
    )
    assert by_name(task) == {
        f"41/241{suffix}": ("train", ("genre---rock",)),
        f"42/242{suffix}": ("train", ("genre---rock", "instrument---guitar", "mood/theme---dark")),
        f"00/1000{suffix}": ("valid", ("genre---pop",)),
        f"01/2001{suffix}": ("test", ("genre---pop", "instrument---guitar")),
    }


def test_mtg_jamendo_subsets_and_audio_dir(tmp_path):
    fake_mtg(tmp_path, subset="all")
    (tmp_path / "audio").rename(tmp_path / "tracks")
    task = mtg_jamendo(tmp_path, subset="all", audio_dir=tmp_path / "tracks")
    assert task.split_sizes() == {"train": 2, "valid": 1, "test": 1}
    assert task.root == tmp_path / "tracks"
    with pytest.raises(MusicSSLError, match="unknown subset 'mood'"):
        mtg_jamendo(tmp_path, subset="mood")


def test_mtg_jamendo_errors(tmp_path):
    with pytest.raises(MusicSSLError, match=r"data/splits: not found; expected a clone"):
        mtg_jamendo(tmp_path)
    fake_mtg(tmp_path)
    with pytest.raises(MusicSSLError, match=r"split-3: not found \(split folders: split-0\)"):
        mtg_jamendo(tmp_path, split=3)
    with pytest.raises(MusicSSLError, match=r"autotagging_genre-train\.tsv: not found"):
        mtg_jamendo(tmp_path, subset="genre")
    (tmp_path / "audio" / "00" / "1000.mp3").unlink()
    with pytest.raises(MusicSSLError, match=r"1 of the 4 tracks of split-0 have no audio.*1000"):
        mtg_jamendo(tmp_path)
    (tmp_path / "audio").rename(tmp_path / "sound")
    with pytest.raises(MusicSSLError, match="no audio/ or audio-low/ folder"):
        mtg_jamendo(tmp_path)


# --------------------------------------------------------------------------------------------
# the registry


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_loader_names_what_is_missing_in_an_empty_folder(tmp_path, name):
    with pytest.raises(MusicSSLError, match=str(tmp_path)):
        DATASETS[name](tmp_path)
