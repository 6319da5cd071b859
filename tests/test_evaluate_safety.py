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
import soundfile
import torch
from safetensors.torch import save_file

from musicssl.corpus import find_audio
from musicssl.encoders import SampleCNN
from musicssl.errors import MusicSSLError
from musicssl.evaluate import degrade
from musicssl.evaluate.builtin_tasks import style_task
from musicssl.evaluate.held_out import trained_files_notes, training_notes
from musicssl.evaluate.report import folder as folder_module
from musicssl.evaluate.report.compare import compare_table
from musicssl.evaluate.run import evaluate, resolve_tasks
from musicssl.evaluate.sources import read_npz
from musicssl.recipe import Recipe

RECIPES = Path(__file__).resolve().parents[1] / "src" / "musicssl" / "recipes"


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


def test_out_replaces_its_own_report_and_keeps_other_files(
    corpus: Path, tmp_path: Path, capsys
) -> None:
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
    assert "holds the report of" not in capsys.readouterr().err  # the same source again
    _evaluate("baseline:mfcc", corpus, tmp_path, out=out)  # another's: said, as it is replaced
    assert (f"note: {out} holds the report of baseline:logmel; it is replaced by that of "
            "baseline:mfcc") in capsys.readouterr().err  # fmt: skip


# ------------------------------------------------------------------------------- user faults


def test_an_empty_or_cut_off_npz_is_one_line_naming_it(tmp_path: Path) -> None:
    whole = tmp_path / "e.npz"
    np.savez(whole, names=np.array([f"clip{i}.wav" for i in range(200)]), emb=np.ones((200, 64)))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(whole.read_bytes()[:5000])
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    for path in (cut, empty):
        with pytest.raises(MusicSSLError) as error:
            read_npz(path)
        assert _one_line(error).startswith(f"{path}: not an .npz")


def test_npz_contents_that_cannot_be_probed_are_one_line_naming_the_file(tmp_path: Path) -> None:
    names = np.array(["a.wav", "b.wav"])
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    cases = {
        text: "not an .npz (numpy's zip of arrays): empty, cut off or another kind of file",
        tmp_path / "nodim.npz": (dict(names=names, emb=np.zeros((2, 0))), "with dim >= 1"),
        tmp_path / "nan.npz": (
            dict(names=names, emb=np.array([[0.0, 1.0], [np.nan, 1.0]])),
            "'emb' of b.wav holds NaN or infinite values",
        ),
        tmp_path / "twice.npz": (
            dict(names=np.array(["a.wav", "a.wav"]), emb=np.ones((2, 2))),
            "a.wav is named 2 times in 'names'",
        ),
        tmp_path / "objects.npz": (  # np.array(["a.wav", None]) holds Python objects
            dict(names=np.array(["a.wav", None]), emb=np.ones((2, 2))),
            "'names' is an array of Python objects, which is not loaded",
        ),
    }
    for path, case in cases.items():
        if isinstance(case, tuple):
            arrays, message = case
            np.savez(path, **arrays)
        else:
            message = case
        with pytest.raises(MusicSSLError) as error:
            read_npz(path)
        line = _one_line(error)
        assert line.startswith(f"{path}: ") and message in line and "allow_pickle" not in line


def test_an_unknown_baseline_is_refused_before_any_copy_is_made(
    corpus: Path, tmp_path: Path
) -> None:
    with pytest.raises(MusicSSLError) as error:
        _evaluate("baseline:foo", corpus, tmp_path, tasks=["degraded_copy"])
    assert "unknown baseline 'foo'" in _one_line(error)
    assert not (corpus / "degraded").exists()
    # A bad name among the baselines beside the source: refused before any probing too.
    with pytest.raises(MusicSSLError) as error:
        _evaluate("baseline:mfcc", corpus, tmp_path, tasks=["degraded_copy"],
                  baselines=["logmel", "none"])  # fmt: skip
    assert _one_line(error).startswith("unknown baseline 'none'; valid names: mfcc")
    assert not (corpus / "degraded").exists() and not (tmp_path / "out").exists()


def _run_trained_on(folder: Path, splits: str, store: Path, init_from: Path | None = None) -> Path:
    """A checkpoint folder of a tiny SampleCNN whose recipe trained on ``splits`` of ``store``
    (starting from ``init_from``, if given)."""
    torch.manual_seed(0)
    encoder = SampleCNN(num_blocks=5, channels=[4, 4, 8, 8, 8, 8, 16], sample_rate=8000)
    folder.mkdir(parents=True)
    (folder / "encoder.json").write_text(
        json.dumps({"name": "sample_cnn", "options": encoder.config()})
    )
    save_file(encoder.state_dict(), str(folder / "encoder.safetensors"))
    recipe = Recipe.load(
        RECIPES / "simclr-shortchunk-cpu.yaml", [f"data.splits={splits}", f"data.store={store}"]
    )
    recipe.train.init_from = str(init_from or "")
    (folder / "recipe.yaml").write_text(recipe.dump())
    return folder


def test_a_run_trained_on_the_test_split_is_noted(corpus: Path, tmp_path: Path, capsys) -> None:
    (corpus / "store-16000").mkdir()  # the store it names is there (its clips read as none)
    (corpus / "store-16000" / "clips.jsonl").write_text("")
    run = _run_trained_on(tmp_path / "ckpt", "train,valid,test", corpus / "store-16000")
    results = _evaluate(str(run), corpus, tmp_path)
    expected = [
        f"{run} trained on the test split (data.splits=train,valid,test): its test scores "
        "are not held out",
        f"{run} trained on the valid split of {corpus} (data.splits=train,valid,test), which "
        "picks the probe: the probe choice is not held out",
    ]
    assert results.notes == expected
    assert json.loads((tmp_path / "out" / "results.json").read_text())["notes"] == expected
    assert [f"warning: {line}" for line in expected] == [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")
    ]
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"## Read this first\n\n- **{expected[0]}**" in report
    assert "trained on the test split" in (tmp_path / "out" / "report.html").read_text()

    held_out = _run_trained_on(tmp_path / "ckpt2", "train", tmp_path / "elsewhere")
    assert training_notes(str(held_out), corpus=corpus) == []
    # A store packed elsewhere from the corpus's manifest is the corpus's (from a copy of the
    # corpus too); one of other music, or one that is gone, says nothing of its splits.
    from musicssl.pack import pack

    copy = tmp_path / "copy"
    shutil.copytree(corpus, copy, ignore=shutil.ignore_patterns("store-*"))
    pack(copy / "manifest.jsonl", out=tmp_path / "elsewhere" / "packed", progress=False)
    (tmp_path / "elsewhere" / "other").mkdir(parents=True)
    meta = {"format": "musicssl-store", "manifest_sha256": "0" * 64, "sr": 16000}
    (tmp_path / "elsewhere" / "other" / "store.json").write_text(json.dumps(meta))
    for name in ("other", "gone"):
        run = _run_trained_on(tmp_path / f"on-{name}", "all", tmp_path / "elsewhere" / name)
        assert training_notes(str(run), corpus=corpus) == []
    gone = tmp_path / "elsewhere" / "gone"
    assert trained_files_notes(str(tmp_path / "on-gone"), []) == [
        f"{tmp_path / 'on-gone'}: the store {gone} it (or a run it started from) trained on is "
        "not there: the tasks' held-out files are not checked against it"
    ]
    other_store = _run_trained_on(tmp_path / "ckpt3", "all", tmp_path / "elsewhere" / "packed")
    notes = training_notes(str(other_store), corpus=corpus)
    assert len(notes) == 2 and "(data.splits=all)" in notes[0]

    # A run that started from one trained on the test split answers for it, down the chain.
    second = _run_trained_on(tmp_path / "ckpt4", "train", tmp_path / "elsewhere", other_store)
    third = _run_trained_on(tmp_path / "ckpt5", "train", tmp_path / "elsewhere", second)
    assert training_notes(str(third), corpus=corpus) == [
        f"{third} started from {second} (train.init_from): {second} started from "
        f"{other_store} (train.init_from): {note}"
        for note in notes
    ]
    shutil.move(other_store, tmp_path / "moved")  # the run it started from is gone
    assert training_notes(str(second), corpus=corpus) == [
        f"{second} started from {other_store} (train.init_from), which is not there: what "
        "that run trained on is not checked"
    ]


def _table_folder(corpus: Path, tmp_path: Path, labels: list[str]) -> tuple[Path, list[str]]:
    """A folder of the corpus's first clips and a table of them, 4 per split, with ``labels``."""
    audio = tmp_path / "mine"
    audio.mkdir()
    clips = sorted(find_audio(corpus / "audio"))[:12]
    names = []
    for clip in clips:
        shutil.copy(clip, audio / clip.name)
        names.append(clip.name)
    splits = ["train"] * 4 + ["valid"] * 4 + ["test"] * 4
    rows = [f"{n},{label},{s}" for n, label, s in zip(names, labels, splits, strict=True)]
    (audio / "t.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    return audio, names


def test_an_npz_lacking_a_few_files_of_a_task_is_scored_without_them(
    corpus: Path, tmp_path: Path, capsys
) -> None:
    audio, names = _table_folder(corpus, tmp_path, ["a", "b"] * 6)
    rng = np.random.default_rng(0)
    npz = tmp_path / "emb.npz"
    kept = names[:1] + names[2:]  # one training file had no embedding (embed skipped it)
    np.savez(npz, names=np.array(kept), emb=rng.normal(size=(len(kept), 8)).astype("f4"))
    results = _evaluate(str(npz), corpus, tmp_path, tasks=[str(audio / "t.csv")])
    task = results.tasks["t"]
    assert task.split_sizes["train"] == 3 and task.split_sizes["test"] == 4
    expected = f"the .npz has no embedding for 1 file of 12 (e.g. {names[1]}); left out"
    assert task.note is not None and task.note.startswith(expected)
    assert f"warning: task t: {expected}" in capsys.readouterr().err
    # Most of them missing, the names are more likely wrong than the files bad: skipped.
    np.savez(npz, names=np.array(names[:5]), emb=rng.normal(size=(5, 8)).astype("f4"))
    with pytest.raises(MusicSSLError, match="no embedding for 7 of its 12 files"):
        _evaluate(str(npz), corpus, tmp_path, tasks=[str(audio / "t.csv")], out=tmp_path / "o2")


def test_a_one_class_table_task_is_skipped_not_scored(corpus: Path, tmp_path: Path) -> None:
    audio, _ = _table_folder(corpus, tmp_path, ["x"] * 12)
    results = _evaluate("baseline:logmel", corpus, tmp_path, tasks=[str(audio / "t.csv")])
    assert results.tasks == {}
    assert [str(skip) for skip in results.skipped] == [
        "t: only one class ('x') in the train split: a probe has nothing to tell apart, and "
        "any score would be meaningless"
    ]
    assert "only one class ('x')" in (tmp_path / "out" / "report.md").read_text()


def test_a_test_split_of_unseen_classes_is_skipped(corpus: Path, tmp_path: Path) -> None:
    labels = ["a", "b"] * 4 + ["c", "d"] * 2
    audio, _ = _table_folder(corpus, tmp_path, labels)
    results = _evaluate("baseline:logmel", corpus, tmp_path, tasks=[str(audio / "t.csv")])
    assert [str(skip) for skip in results.skipped] == [
        "t: the test split has no example of any class in the train split (a, b): nothing to score"
    ]


def test_a_truncated_wav_is_skipped_and_listed_in_the_report(
    corpus: Path, tmp_path: Path, capsys
) -> None:
    audio, names = _table_folder(corpus, tmp_path, ["a", "b"] * 6)
    data = (audio / names[0]).read_bytes()
    frames = soundfile.info(str(audio / names[0])).frames
    kept = frames // 2
    (audio / names[0]).write_bytes(data[: len(data) - 2 * (frames - kept)])
    results = _evaluate("baseline:logmel", corpus, tmp_path, tasks=[str(audio / "t.csv")])
    line = f"{names[0]}: truncated: header declares {frames} frames, file holds {kept}"
    assert results.skipped_files == [line]
    assert results.tasks["t"].split_sizes["train"] == 3
    assert f"## Files not embedded\n\n- {line}" in (tmp_path / "out" / "report.md").read_text()
    assert line in (tmp_path / "out" / "report.html").read_text()
    assert f"skipped {line}" in capsys.readouterr().out
    again = _evaluate("baseline:logmel", corpus, tmp_path, tasks=[str(audio / "t.csv")])
    assert again.skipped_files == [line]  # from the cache, and said in the terminal again
    assert f"skipped {line}" in capsys.readouterr().out


def test_layers_all_on_an_npz_without_layers_says_so(corpus: Path, tmp_path: Path, capsys) -> None:
    names = style_task(corpus).names
    npz = tmp_path / "e.npz"
    rng = np.random.default_rng(0)
    np.savez(npz, names=np.array(names), emb=rng.normal(size=(len(names), 8)))
    _evaluate(str(npz), corpus, tmp_path, layers="all")
    err = capsys.readouterr().err
    assert f"note: --layers all is ignored: {npz} holds no layer_K arrays, only 'emb'\n" in err


def test_layers_all_on_an_npz_without_frame_layers_says_pitch_is_last_layer_only(
    corpus: Path, tmp_path: Path, capsys
) -> None:
    from musicssl.evaluate.builtin_tasks import pitch_task

    names = pitch_task(corpus).names
    npz = tmp_path / "e.npz"
    rng = np.random.default_rng(0)
    count = 4  # frames per clip, over its first second
    np.savez(
        npz,
        names=np.array(names),
        emb=rng.normal(size=(len(names), 8)),
        layer_0=rng.normal(size=(len(names), 8)),
        frame_names=np.array(names),
        frames=rng.normal(size=(len(names) * count, 8)),
        frame_times=np.tile((np.arange(count) + 0.5) / count, len(names)),
        frame_offsets=np.arange(len(names) + 1) * count,
    )
    results = _evaluate(str(npz), corpus, tmp_path, tasks=["pitch"], layers="all")
    err = capsys.readouterr().err
    note = f"note: pitch is probed on the last layer only: {npz} holds no frames_layer_K arrays"
    assert note in err
    assert results.tasks["pitch"].by_layer is None


def test_figures_of_an_earlier_report_go_and_other_files_stay(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    _evaluate("baseline:logmel", corpus, tmp_path, out=out, tasks=["style"])
    assert (out / "figures" / "map.png").is_file()
    (out / "figures" / "mine.png").write_bytes(b"my figure")
    audio, _ = _table_folder(corpus, tmp_path, ["a", "b"] * 6)
    _evaluate("baseline:logmel", corpus, tmp_path, out=out, tasks=[str(audio / "t.csv")])
    listed = json.loads((out / "results.json").read_text())["report_files"]
    assert "figures/map.png" not in listed and not (out / "figures" / "map.png").exists()
    assert (out / "figures" / "mine.png").read_bytes() == b"my figure"
    assert {path for path in listed} == {
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
    } - {"results.json", "figures/mine.png"}


def test_a_report_cut_off_by_a_full_disk_is_refused_by_compare(tmp_path: Path, monkeypatch) -> None:
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(folder_module, "write_report", full_disk)
    results = {"source": "a.pt", "seeds": 1, "tasks": {}}
    with pytest.raises(OSError):
        folder_module.write_evaluation(tmp_path / "out", results)
    with pytest.raises(MusicSSLError) as error:
        compare_table([tmp_path / "out"])
    assert "did not finish writing its report" in _one_line(error)
    monkeypatch.undo()
    folder_module.write_evaluation(tmp_path / "out", results)  # the folder is still ours
    assert "run" in compare_table([tmp_path / "out"])


def test_a_named_corpus_folder_without_a_corpus_is_an_error_not_a_build(tmp_path: Path) -> None:
    mistyped = tmp_path / "corpsu"
    with pytest.raises(MusicSSLError) as error:
        _evaluate("baseline:logmel", mistyped, tmp_path)
    assert str(mistyped) in _one_line(error) and "musicssl corpus build" in str(error.value)
    assert not mistyped.exists() and not (tmp_path / "out").exists()


def test_a_table_named_as_a_builtin_task_is_refused_and_one_given_twice_is_kept_once(
    corpus: Path, tmp_path: Path
) -> None:
    audio, _ = _table_folder(corpus, tmp_path, ["a", "b"] * 6)
    (audio / "t.csv").rename(audio / "style.csv")
    with pytest.raises(MusicSSLError, match=r"^--tasks .*style.csv: gives a task named 'style', "
                       "as an earlier one does; results are kept by name"):  # fmt: skip
        resolve_tasks(["style", str(audio / "style.csv")], corpus=corpus, progress=False)
    tasks = resolve_tasks(["transfer", "key@transfer"], corpus=corpus, progress=False)
    assert sorted(task.name for task in tasks) == sorted(set(task.name for task in tasks))


def test_your_own_tasks_alone_build_no_corpus(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    from conftest import untrained_run

    audio, _ = _table_folder(corpus, tmp_path, ["a", "b"] * 6)
    torch.manual_seed(0)
    encoder = SampleCNN(num_blocks=5, channels=[4, 4, 8, 8, 8, 8, 16], sample_rate=8000)
    run = untrained_run(tmp_path / "run", encoder, "sample_cnn")
    monkeypatch.chdir(tmp_path / "mine")  # where data/corpus, the default, holds nothing
    results = evaluate(str(run), tasks=[str(audio / "t.csv")], seeds=1, baselines=["logmel"],
                       out=tmp_path / "out", cache=tmp_path / "cache", progress=False)  # fmt: skip
    assert set(results.tasks) == {"t"} and set(results.baselines) == {"baseline:logmel"}
    assert results.equivariance is None  # it needs the corpus's clips
    assert (
        results.corpus == ""
        and "none (your own tasks only)" in (tmp_path / "out" / "report.md").read_text()
    )
    assert not (tmp_path / "mine" / "data").exists()
    # A misspelt task or a table in a format of another name is refused before any corpus
    # is rendered for it; a table's ending is read in any case, .tsv included.
    for spec, message in (
        ("stlye", "unknown task 'stlye'"),
        (str(audio / "t.txt"), "unknown task"),
        ("instrument@transfer", "no transfer task 'instrument@transfer'"),
        ("zeroshot_style", r"'zeroshot_style' is not asked for by name: .* \(a clip task"),
    ):
        with pytest.raises(MusicSSLError, match=message):
            evaluate(str(run), tasks=[spec], out=tmp_path / "o2", cache=tmp_path / "cache",
                     progress=False)  # fmt: skip
        assert not (tmp_path / "mine" / "data").exists() and not (tmp_path / "o2").exists()
    # A corpus that happens to lie at the default place changes nothing: it is not read.
    (tmp_path / "mine" / "data").mkdir()
    (tmp_path / "mine" / "data" / "corpus").symlink_to(corpus)
    again = evaluate(str(run), tasks=[str(audio / "t.csv")], seeds=1, baselines=[],
                     out=tmp_path / "out2", cache=tmp_path / "cache", progress=False)  # fmt: skip
    assert again.equivariance is None and again.corpus == ""
    assert again.tasks["t"].metrics == results.tasks["t"].metrics
    rows = (audio / "t.csv").read_text().replace(",", "\t")
    (audio / "T.TSV").write_text(rows)
    assert resolve_tasks([str(audio / "T.TSV")], corpus=tmp_path / "none")[0].examples == (
        resolve_tasks([str(audio / "t.csv")], corpus=tmp_path / "none")[0].examples
    )


def _table_trained_on(corpus: Path, tmp_path: Path) -> tuple[Path, list[str], Path]:
    """``_table_folder``'s clips indexed, packed and named by a run trained on all of them."""
    from musicssl.corpus import index_folder
    from musicssl.pack import pack

    audio, names = _table_folder(corpus, tmp_path, ["a", "b"] * 6)
    index_folder(audio, out=tmp_path / "mine.jsonl", split_by="file", progress=False)
    pack(tmp_path / "mine.jsonl", out=tmp_path / "store", sr=8000, progress=False)
    return audio, names, _run_trained_on(tmp_path / "ckpt", "all", tmp_path / "store")


def test_a_table_that_holds_out_files_the_run_trained_on_is_warned_of(
    corpus: Path, tmp_path: Path
) -> None:
    audio, _, trained = _table_trained_on(corpus, tmp_path)
    results = _evaluate(str(trained), corpus, tmp_path, tasks=[str(audio / "t.csv")])
    assert (
        f"{trained} trained on files that task t holds out (4 test, 4 valid): their scores "
        "are not held out; evaluate on a task without them, or pretrain on a store without them"
    ) in results.notes
    # Through the .npz that musicssl embed writes with it, too; moved away, that is said.
    from musicssl.embed import load
    from musicssl.embed_folder import embed_files

    npz = tmp_path / "emb.npz"
    embed_files(load(trained), audio, out=npz, progress=False)
    through = _evaluate(str(npz), corpus, tmp_path, tasks=[str(audio / "t.csv")],
                        out=tmp_path / "out-npz")  # fmt: skip
    assert f"{trained.resolve()} trained on files that task t holds out" in " ".join(through.notes)
    trained.rename(tmp_path / "moved")
    through = _evaluate(str(npz), corpus, tmp_path, tasks=[str(audio / "t.csv")],
                        out=tmp_path / "out-npz-2")  # fmt: skip
    assert through.notes == [
        f"{npz} was embedded with {trained.resolve()}, which is not there: what it trained on "
        "is not checked against the tasks' held-out files"
    ]
    (tmp_path / "moved").rename(trained)
    # Through a run that started from it, too; a run on other audio is not warned of.
    later = _run_trained_on(tmp_path / "later", "train", tmp_path / "elsewhere", trained)
    table = resolve_tasks([str(audio / "t.csv")], corpus=corpus)[0]
    assert (
        f"{trained}, which {later} started from, trained on files that task t holds out "
        "(4 test, 4 valid): their scores are not held out; evaluate on a task without them, "
        "or pretrain on a store without them"
    ) in trained_files_notes(str(later), [table])
    # A table split by a hash of its paths is told to say the split itself.
    lines = (audio / "t.csv").read_text().splitlines()
    rows = [line.rsplit(",", 1)[0] for line in lines[1:]]
    (audio / "hashed.csv").write_text("\n".join(["path,label", *rows]) + "\n")
    hashed = resolve_tasks([str(audio / "hashed.csv")], corpus=corpus)[0]
    (note,) = trained_files_notes(str(trained), [hashed])
    assert note.endswith("give the table a split column that keeps them in train")
    (corpus / "store-16000").mkdir()  # a store of the corpus, its rows without digests
    (corpus / "store-16000" / "clips.jsonl").write_text("")
    elsewhere = _run_trained_on(tmp_path / "other", "all", corpus / "store-16000")
    assert (
        trained_files_notes(str(elsewhere), resolve_tasks([str(audio / "t.csv")], corpus=corpus))
        == []
    )


def test_the_same_audio_in_another_lossless_format_is_found_too(
    corpus: Path, tmp_path: Path
) -> None:
    import soundfile as sf

    audio, names, trained = _table_trained_on(corpus, tmp_path)
    # The same clips re-encoded as FLAC (the same 16-bit samples, other bytes), in a table.
    flac = tmp_path / "flac"
    flac.mkdir()
    for name in names:
        samples, sr = sf.read(audio / name, dtype="int16")
        sf.write(flac / name.replace(".wav", ".flac"), samples, sr, subtype="PCM_16")
    table = (audio / "t.csv").read_text().replace(".wav", ".flac")
    (flac / "t.csv").write_text(table)
    task = resolve_tasks([str(flac / "t.csv")], corpus=corpus)[0]
    assert all(
        (flac / e.name).read_bytes() != (audio / e.name.replace(".flac", ".wav")).read_bytes()
        for e in task.examples
    )
    (note,) = trained_files_notes(str(trained), [task])
    assert note.startswith(f"{trained} trained on files that task t holds out (4 test, 4 valid)")


def test_a_refused_evaluation_leaves_no_folder_it_made(tmp_path: Path, capsys) -> None:
    from musicssl.cli import main

    out = tmp_path / "reports" / "new" / "x"
    argv = ["evaluate", "baseline:mfcc", "--tasks", str(tmp_path / "nope.csv"), "--out", str(out)]
    assert main(argv) == 1
    assert "nope.csv" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # reports/ and reports/new too


def test_beside_an_npz_of_musicssl_embed_the_random_weights_are_its_runs_architecture(
    corpus: Path, tmp_path: Path, capsys
) -> None:
    from musicssl.embed import load
    from musicssl.embed_folder import embed_files
    from musicssl.encoders import SampleCNN

    from conftest import untrained_run

    torch.manual_seed(0)
    encoder = SampleCNN(num_blocks=4, channels=[4, 4, 8, 8, 8, 12], sample_rate=16000)
    run = untrained_run(tmp_path / "run", encoder, "sample_cnn")
    npz = tmp_path / "emb.npz"
    embed_files(load(run), corpus / "audio", out=npz, progress=False)
    _evaluate(str(npz), corpus, tmp_path, baselines=["random"])
    assert "the demo's network" not in capsys.readouterr().err
    cached = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "results").glob("*.json")]
    (random,) = [c for c in cached if c["source"] == "baseline:random"]
    embeddings = list((tmp_path / "cache" / "embeddings").glob("*.npz"))
    widths = {np.load(path)["emb"].shape[1] for path in embeddings}
    assert widths == {12}  # the run's 12-wide SampleCNN, not the demo's network
    assert random["tasks"]["style"]["metrics"]
