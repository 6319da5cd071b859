"""musicssl evaluate end to end on the tiny built-in corpus: sources, cache, results, report."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from musicssl.encoders import build_encoder
from musicssl.errors import MusicSSLError
from musicssl.evaluate.builtin_tasks import builtin_tasks
from musicssl.evaluate.results import Evaluation
from musicssl.evaluate.run import evaluate, resolve_tasks

FAST = ["style", "key", "same_piece"]


def _checkpoint(folder: Path) -> Path:
    torch.manual_seed(3)
    options = {"channels": 4, "hop_length": 64, "input_samples": 8192}
    encoder = build_encoder("short_chunk_cnn", **options)
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, folder / "enc.tmp")
    (folder / "enc.tmp").rename(folder / "encoder.safetensors")
    spec = {"name": "short_chunk_cnn", "options": encoder.config()}
    (folder / "encoder.json").write_text(json.dumps(spec))
    return folder


def test_every_builtin_task_runs_and_results_hold_metrics_and_split_sizes(
    tiny_corpus: Path, tmp_path: Path
):
    results = evaluate(
        "baseline:logmel",
        out=tmp_path / "out",
        corpus=tiny_corpus,
        seeds=2,
        baselines=[],
        cache=tmp_path / "cache",
        progress=False,
    )
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["tasks"].keys() == results.tasks.keys()
    report_files = written.pop("report_files")
    assert written == results.to_dict()
    on_disk = {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")}
    assert {"report.md", "report.html", "figures/scores.png"} <= set(report_files)
    assert set(report_files) == on_disk - {"results.json", "figures"}
    expected = {task.name: task for task in builtin_tasks(tiny_corpus)}
    assert set(written["tasks"]) == set(expected)
    for name, entry in written["tasks"].items():
        assert entry["main"] in entry["metrics"]
        assert len(entry["metrics"][entry["main"]]["values"]) == 2
        sizes = expected[name].split_sizes()
        for split, count in sizes.items():
            assert entry["split_sizes"][split] == count
    for name in ("report.md", "report.html"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_embeddings_are_cached_and_cached_equals_uncached(tiny_corpus: Path, tmp_path: Path):
    def run(out: str) -> Evaluation:
        return evaluate(
            "baseline:mfcc",
            out=tmp_path / out,
            corpus=tiny_corpus,
            tasks=FAST,
            seeds=2,
            baselines=[],
            cache=tmp_path / "cache",
            progress=False,
        )

    first = run("a")
    cached = sorted((tmp_path / "cache" / "embeddings").glob("*.npz"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    second = run("b")
    assert cached[0].stat().st_mtime_ns == stamp  # read, not rewritten
    for name in FAST:
        assert first.tasks[name].metrics == second.tasks[name].metrics
    cached[0].write_bytes(cached[0].read_bytes()[:100])  # a damaged cache file: embedded again
    third = run("c")
    assert cached[0].stat().st_size > 100
    for name in FAST:
        assert first.tasks[name].metrics == third.tasks[name].metrics


def test_a_rerun_says_what_it_read_from_the_cache(tiny_corpus: Path, tmp_path: Path, capsys):
    options = dict(corpus=tiny_corpus, tasks=["key"], seeds=1, baselines=["logmel"],
                   cache=tmp_path / "cache", progress=True)  # fmt: skip
    evaluate("baseline:mfcc", out=tmp_path / "a", **options)
    assert "read from the cache" not in capsys.readouterr().out
    evaluate("baseline:mfcc", out=tmp_path / "b", **options)
    said = capsys.readouterr().out
    assert re.search(r"embed: \d+ files read from the cache \(.*embeddings.*\.npz\)", said)
    assert "baseline:logmel: its results read from the cache" in said


def test_random_npz_scores_near_chance_and_missing_names_skip_a_task(
    tiny_corpus: Path, tmp_path: Path
):
    tasks = {t.name: t for t in resolve_tasks(["style", "same_piece"], corpus=tiny_corpus)}
    names = [n for n in tasks["style"].names]  # the originals, no degraded copies
    rng = np.random.default_rng(0)
    npz = tmp_path / "random.npz"
    np.savez(npz, names=np.array(names), emb=rng.normal(size=(len(names), 32)).astype("f4"))
    results = evaluate(
        str(npz),
        out=tmp_path / "out",
        corpus=tiny_corpus,
        tasks=["style", "same_piece", "degraded_copy"],
        seeds=3,
        baselines=[],
        cache=tmp_path / "cache",
        progress=False,
    )
    assert [skip.task for skip in results.skipped] == ["degraded_copy"]
    style = results.tasks["style"]
    # 6 styles, 12 test clips: a random embedding can only be lucky, not good.
    assert style.metrics["accuracy"].mean <= 0.5


def test_an_npz_of_under_half_a_tasks_files_says_how_many_it_found(
    tiny_corpus: Path, tmp_path: Path
):
    names = resolve_tasks(["style"], corpus=tiny_corpus)[0].names
    few = names[: len(names) // 4]
    npz = tmp_path / "few.npz"
    np.savez(npz, names=np.array(few), emb=np.ones((len(few), 4), dtype="f4"))
    with pytest.raises(MusicSSLError) as caught:
        evaluate(str(npz), out=tmp_path / "out", corpus=tiny_corpus, tasks=["style"], seeds=1,
                 baselines=[], cache=tmp_path / "cache", progress=False)  # fmt: skip
    assert (
        f"style: the .npz has no embedding for {len(names) - len(few)} of its {len(names)} "
        f"files, e.g. {names[len(few)]} ({len(few)} found; a task is probed when at least half "
        "of its files are; names must be relative to "
    ) in str(caught.value)


def test_npz_names_relative_to_the_corpus_folder_or_absolute_score_as_the_audio_folders(
    tiny_corpus: Path, tmp_path: Path
):
    """``musicssl embed RUN CORPUS`` names files ``audio/x.wav`` and ``transfer/audio/x.wav``;
    another system may write absolute paths, or Windows' separators. All read as the task's
    own names."""
    tasks = {t.name: t for t in resolve_tasks(["key", "key@transfer"], corpus=tiny_corpus)}
    names = sorted(set(tasks["key"].names) | set(tasks["key@transfer"].names))
    assert any(name.startswith("../transfer/") for name in names)
    emb = np.random.default_rng(0).normal(size=(len(names), 16)).astype("f4")
    audio = (tiny_corpus / "audio").resolve()
    link = tmp_path / "linked"
    link.symlink_to(tiny_corpus)
    spellings = {
        "as tasks name them": names,
        "from the corpus folder": [os.path.normpath(Path("audio") / n) for n in names],
        "absolute": [os.path.normpath(audio / n) for n in names],
        "through a link": [os.path.normpath(link / "audio" / n) for n in names],
        "with ./ and ..": [f"./audio/../audio/{n}" for n in names],
        "as bytes": [os.path.normpath(Path("audio") / n).encode() for n in names],
        "on Windows": [os.path.normpath(Path("audio") / n).replace("/", "\\") for n in names],
    }
    assert any(n.startswith("transfer/audio/") for n in spellings["from the corpus folder"])
    scores = {}
    for how, spelled in spellings.items():
        npz = tmp_path / f"{len(scores)}.npz"
        np.savez(npz, names=np.array(spelled), emb=emb)  # bytes: numpy's "S" array
        results = evaluate(
            str(npz),
            out=tmp_path / f"out{len(scores)}",
            corpus=tiny_corpus,
            tasks=["key", "key@transfer"],
            seeds=1,
            baselines=[],
            cache=tmp_path / "cache",
            progress=False,
        )
        assert not results.skipped, how
        scores[how] = {name: task.metrics for name, task in results.tasks.items()}
    first = scores["as tasks name them"]
    assert all(found == first for found in scores.values())


def test_a_checkpoint_is_evaluated_beside_its_random_weights(tiny_corpus: Path, tmp_path: Path):
    checkpoint = _checkpoint(tmp_path / "ckpt")
    results = evaluate(
        str(checkpoint),
        out=tmp_path / "out",
        corpus=tiny_corpus,
        tasks=["style"],
        seeds=2,
        baselines=["random"],
        cache=tmp_path / "cache",
        progress=False,
    )
    assert results.baselines is not None and set(results.baselines) == {"baseline:random"}
    assert results.map is not None and len(results.map.points) == len(results.map.labels)
    # The random baseline rebuilt the checkpoint's architecture: two embedding caches.
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npz"))) == 2
    html = (tmp_path / "out" / "report.html").read_text()
    assert "baseline:random" in html
    # Read back from Python as it was written.
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    read = Evaluation.read(tmp_path / "out")
    written.pop("report_files")  # what the report added beside the results
    assert read.to_dict() == written and read.baselines is not None
    assert Evaluation.read(tmp_path / "out" / "results.json").to_dict() == written
    (tmp_path / "out" / "results.json").write_text('{"tasks": {}}')
    with pytest.raises(MusicSSLError, match=r"results.json: not an evaluation's results \(Key"):
        Evaluation.read(tmp_path / "out")


def test_unknown_tasks_and_sources_are_clear_errors(tiny_corpus: Path, tmp_path: Path):
    with pytest.raises(MusicSSLError, match="unknown task 'genre'"):
        resolve_tasks(["genre"], corpus=tiny_corpus)
    with pytest.raises(MusicSSLError, match="unknown data set"):
        resolve_tasks(["fma=/nowhere"], corpus=tiny_corpus)
    with pytest.raises(MusicSSLError, match="--tasks gtzan=/nowhere: /nowhere is not a folder"):
        resolve_tasks(["gtzan=/nowhere"], corpus=tiny_corpus)
    with pytest.raises(MusicSSLError, match="give the data set's folder after '='"):
        resolve_tasks(["gtzan="], corpus=tiny_corpus)
    assert [t.name for t in resolve_tasks(["style", "style"], corpus=tiny_corpus)] == ["style"]
    with pytest.raises(MusicSSLError, match="not a checkpoint"):
        evaluate(str(tmp_path), out=tmp_path / "o", corpus=tiny_corpus, progress=False)
    (tmp_path / "young").mkdir()  # a run before its first checkpoint
    (tmp_path / "young" / "recipe.yaml").write_text("method: {name: simclr}\n")
    with pytest.raises(MusicSSLError, match="young: a run with no checkpoint yet"):
        evaluate(str(tmp_path / "young"), out=tmp_path / "o", corpus=tiny_corpus, progress=False)
    # The demo's folder holds its run one level down: the error names it.
    demo = tmp_path / "demo"
    (demo / "run").mkdir(parents=True)
    (demo / "run" / "latest").write_text("step-00000001\n")
    with pytest.raises(MusicSSLError, match=f"demo: not a run; the run in it is {demo / 'run'}"):
        evaluate(str(demo), out=tmp_path / "o", corpus=tiny_corpus, progress=False)


def test_layers_all_probes_every_encoder_layer(tiny_corpus: Path, tmp_path: Path):
    checkpoint = _checkpoint(tmp_path / "ckpt")
    results = evaluate(
        str(checkpoint),
        out=tmp_path / "out",
        corpus=tiny_corpus,
        tasks=["style", "same_piece", "pitch"],
        seeds=2,
        layers="all",
        baselines=["random"],
        cache=tmp_path / "cache",
        progress=False,
    )
    num_layers = json.loads((checkpoint / "encoder.json").read_text())
    by_layer = results.tasks["style"].by_layer
    assert by_layer is not None
    # The CNN's layers differ in width: no weighted sum of them.
    assert results.tasks["style"].layer_weights is None
    assert sorted(by_layer, key=int) == [str(k) for k in range(len(by_layer))]
    assert len(by_layer) == build_encoder(num_layers["name"], **num_layers["options"]).num_layers
    assert all("accuracy" in scores for scores in by_layer.values())
    assert results.tasks["same_piece"].by_layer is not None
    assert results.tasks["style"].best_layer in by_layer
    assert results.tasks["same_piece"].best_layer is None  # retrieval has no valid split
    # Pitch on each layer's frame track; the last layer's is the headline's own track.
    pitch = results.tasks["pitch"]
    assert pitch.by_layer is not None and len(pitch.by_layer) == len(by_layer)
    last = pitch.by_layer[str(len(by_layer) - 1)]["accuracy"]
    assert last.values == pitch.metrics["accuracy"].values
    assert pitch.best_layer in pitch.by_layer
    # The random weights too, layer by layer (kept in the cache), beside the source's.
    cached = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "results").glob("*.json")]
    assert [c["source"] for c in cached] == ["baseline:random"]
    for name in ("style", "pitch"):
        assert sorted(cached[0]["tasks"][name]["by_layer"]) == sorted(by_layer)
    # ... and in results.json, beside their headlines, with their per-seed values.
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    layered = written["baseline_layers"]["baseline:random"]
    for layer, scores in cached[0]["tasks"]["style"]["by_layer"].items():
        assert layered["style"][layer]["accuracy"]["mean"] == scores["accuracy"]["mean"]
        assert len(layered["style"][layer]["accuracy"]["values"]) == 2  # a value per seed
    assert sorted(layered) == ["pitch", "same_piece", "style"]
    again = Evaluation.from_dict(written).to_dict()
    assert again["baseline_layers"] == written["baseline_layers"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "(best on valid)" in report
    assert report.count("so it need not equal any row") == 3  # under each task's layer table
    assert report.count("this task ranks by similarity, with no probe") == 1  # same_piece's
    assert (tmp_path / "out" / "figures").is_dir()
    assert results.layer_labels is None  # one stack of layers: the numbers say it all


def test_the_layers_of_a_branches_encoder_are_named_by_branch_in_results_and_report(
    tiny_corpus: Path, tmp_path: Path
):
    from test_encoders import SMALL

    from conftest import untrained_run

    torch.manual_seed(0)
    encoder = build_encoder("branches", **SMALL["branches"]["kwargs"])
    run = untrained_run(tmp_path / "branches", encoder, "branches")
    results = evaluate(str(run), out=tmp_path / "out", corpus=tiny_corpus, tasks=["style"],
                       seeds=1, layers="all", baselines=[], cache=tmp_path / "cache",
                       progress=False)  # fmt: skip
    assert results.layer_labels == {
        str(layer): label for layer, label in enumerate(encoder.layer_labels())
    }
    assert results.layer_labels["0"] == "timbre layer 0" and results.layer_labels["11"] == "joint"
    assert Evaluation.from_dict(results.to_dict()).layer_labels == results.layer_labels
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| 7 (key layer 0)" in report and "| 11 (joint)" in report
    assert "the clip embedding: each branch's own pooled output, centred and scaled" in report


def test_layers_of_one_width_are_also_probed_as_a_learned_weighted_sum(
    tiny_corpus: Path, tmp_path: Path
):
    from conftest import untrained_run

    torch.manual_seed(0)
    options = {"width": 16, "depth": 3, "num_heads": 2, "n_bins": 32, "patch": [8, 8]}
    run = untrained_run(
        tmp_path / "vit", build_encoder("spectrogram_vit", **options), "spectrogram_vit"
    )
    results = evaluate(
        str(run),
        out=tmp_path / "out",
        corpus=tiny_corpus,
        tasks=["style", "same_piece", "pitch"],
        seeds=2,
        layers="all",
        baselines=[],
        cache=tmp_path / "cache",
        progress=False,
    )
    for name in ("style", "pitch"):
        task = results.tasks[name]
        assert task.by_layer is not None and task.layer_weights is not None
        assert sorted(task.by_layer) == ["0", "1", "2", "weighted"]
        assert sorted(task.layer_weights) == ["0", "1", "2"]
        assert sum(task.layer_weights.values()) == pytest.approx(1.0)
        assert task.best_layer != "weighted"  # the best layer is one of the encoder's
        assert len(task.by_layer["weighted"][task.main].values) == 2
    # Which of the run's checkpoints was read is kept, and said in the report.
    assert results.checkpoint == str(run / "checkpoints" / "step-00000001")
    retrieval = results.tasks["same_piece"]  # no labels to learn weights from
    assert retrieval.by_layer is not None and "weighted" not in retrieval.by_layer
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| weighted sum of the layers |" in report and "weight in the sum" in report
    assert f"- **checkpoint**: {run / 'checkpoints' / 'step-00000001'}" in report
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (
        Evaluation.from_dict(written).tasks["style"].layer_weights
        == results.tasks["style"].layer_weights
    )


def test_the_best_layer_is_the_one_whose_probe_scored_highest_on_valid():
    from musicssl.evaluate.results import TaskResult
    from musicssl.evaluate.scoring import best_layer

    def scored(valid: dict[str, float] | None) -> TaskResult:
        return TaskResult("t", "multiclass", "", {}, "accuracy", {}, {}, valid=valid)

    layers = {
        "0": scored({"linear:0.1": 0.40, "mlp:0.01": 0.55}),
        "1": scored({"linear:0.1": 0.61, "mlp:0.01": 0.30}),
        "2": scored({"linear:0.1": 0.61}),  # a tie goes to the earlier layer
    }
    assert best_layer(layers) == "1"
    assert best_layer({"0": scored(None)}) is None


def test_a_changed_audio_file_is_embedded_again(tiny_corpus: Path, tmp_path: Path):
    import shutil

    import soundfile as sf

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)

    def run() -> None:
        evaluate(
            "baseline:logmel",
            out=tmp_path / "out",
            corpus=corpus,
            tasks=["style"],
            seeds=1,
            baselines=[],
            cache=tmp_path / "cache",
            progress=False,
        )

    run()
    run()
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npz"))) == 1
    name = builtin_tasks(corpus, names=["style"])[0].split("test")[0].name
    audio, sr = sf.read(str(corpus / "audio" / name), dtype="float32")
    sf.write(str(corpus / "audio" / name), 0.5 * audio, sr)
    run()
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npz"))) == 2
