"""The transfer tasks: probes fitted on the usual clips, tested on the transfer renders."""

import json
import shutil
from pathlib import Path

import pytest

from musicssl.errors import MusicSSLError
from musicssl.evaluate.builtin_tasks import TRANSFER_TASKS, builtin_task, transfer_task
from musicssl.evaluate.run import evaluate, resolve_tasks


def test_transfer_tasks_test_on_the_renders_of_the_test_clips(tiny_corpus: Path):
    tasks = resolve_tasks(["transfer"], corpus=tiny_corpus)
    assert [task.name for task in tasks] == [f"{name}@transfer" for name in TRANSFER_TASKS]
    assert "instrument" not in TRANSFER_TASKS and "degraded_copy" not in TRANSFER_TASKS
    for task in tasks:
        usual = builtin_task(task.name.removesuffix("@transfer"), tiny_corpus)
        assert task.kind == usual.kind and task.root == usual.root
        tested = ("query", "gallery") if task.kind == "retrieval" else ("test",)
        for split in {example.split for example in usual.examples} - set(tested):
            # Fitted on the usual clips.
            assert [e.name for e in task.split(split)] == [e.name for e in usual.split(split)]
        for split in tested:
            ours, theirs = task.split(split), usual.split(split)
            assert len(ours) == len(theirs) > 0
            for example, original in zip(ours, theirs, strict=True):
                # The same clip, found beside the audio folder, with the same label.
                assert example.name == f"../transfer/audio/{original.name}"
                assert (task.root / example.name).is_file()
                if task.kind == "pitch":
                    assert (example.target == original.target).all()
                else:
                    assert example.target == original.target


def test_a_corpus_without_transfer_renders_or_an_unknown_task_is_refused(
    tiny_corpus: Path, tmp_path: Path
):
    bare = tmp_path / "bare"
    shutil.copytree(tiny_corpus / "audio", bare / "audio")
    shutil.copy(tiny_corpus / "manifest.jsonl", bare / "manifest.jsonl")
    with pytest.raises(MusicSSLError, match="transfer/manifest.jsonl: no transfer renders"):
        resolve_tasks(["style@transfer"], corpus=bare)
    with pytest.raises(MusicSSLError, match="no transfer task 'instrument@transfer'"):
        transfer_task("instrument", tiny_corpus)
    with pytest.raises(MusicSSLError, match="unknown task 'style@elsewhere'"):
        resolve_tasks(["style@elsewhere"], corpus=tiny_corpus)


def test_evaluate_reports_a_task_beside_its_transfer_task(tiny_corpus: Path, tmp_path: Path):
    results = evaluate(
        "baseline:logmel",
        out=tmp_path / "out",
        corpus=tiny_corpus,
        tasks=["tempo", "tempo@transfer"],
        seeds=1,
        baselines=[],
        cache=tmp_path / "cache",
        progress=False,
    )
    assert list(results.tasks) == ["tempo", "tempo@transfer"]
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["tasks"]["tempo@transfer"]["split_sizes"] == {
        "train": 12,
        "valid": 12,
        "test": 12,
    }
    # Different test audio, so different scores are possible; the same metrics are reported.
    assert (
        written["tasks"]["tempo"]["metrics"].keys()
        == written["tasks"]["tempo@transfer"]["metrics"].keys()
    )
    assert "tempo@transfer" in (tmp_path / "out" / "report.md").read_text()


def test_the_summary_says_where_a_source_stands_against_random_weights_and_baselines():
    from musicssl.evaluate.report.reading import System
    from musicssl.evaluate.report.tables import summary_rows

    def system(label: str, key: float, style: float) -> System:
        tasks = {
            name: {"kind": "multiclass", "main": "accuracy",
                   "metrics": {"accuracy": {"mean": mean, "std": 0.01}}}
            for name, mean in (("key", key), ("style@transfer", style))
        }  # fmt: skip
        return System(label=label, results={"tasks": tasks})

    systems = [
        system("runs/a", key=0.10, style=0.60),
        system("baseline:random", key=0.30, style=0.40),
        system("baseline:mfcc", key=0.20, style=0.45),
        system("baseline:logmel", key=0.25, style=0.61),
    ]
    header, rows, marks = summary_rows(systems)
    column = header.index("keeps")
    assert header[column - 1] == "chance"
    verdicts = {row[0]: row[column] for row in rows}
    assert verdicts == {
        "key": "below random weights, below logmel",  # key-blind: training lost it
        "style@transfer": "above random weights, level with logmel",
    }
    assert all(len(m) == len(header) for m in marks)
    # A baseline evaluated as the source gets no such column.
    assert "keeps" not in summary_rows(systems[1:])[0]
    # Beside an .npz, baseline:random is another network: compared as any baseline.
    npz = [system("emb/mine.npz", key=0.10, style=0.60), *systems[1:]]
    header, rows, _ = summary_rows(npz)
    verdicts = {row[0]: row[header.index("keeps")] for row in rows}
    assert verdicts == {"key": "below random", "style@transfer": "level with logmel"}
