"""evaluate.report.pages: every file written, the HTML self-contained, numbers as expected."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicssl.errors import MusicSSLError
from musicssl.evaluate.report.confusion import key_order
from musicssl.evaluate.report.pages import write_report

STYLES = ("baroque", "classical", "folk_irish", "folk_german", "renaissance", "romantic")
KEYS = tuple(
    f"{tonic} {mode}"
    for mode in ("major", "minor")
    for tonic in ("A", "A#", "B", "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#")
)


def _metric(rng: np.random.Generator, mean: float, std: float, seeds: int) -> dict[str, Any]:
    values = [float(v) for v in mean + std * rng.standard_normal(seeds)]
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)), "values": values}


def _confusion(rng: np.random.Generator, size: int, per_class: int, hit: float) -> list[list[int]]:
    counts = np.zeros((size, size), dtype=int)
    for row in range(size):
        estimates = np.where(rng.random(per_class) < hit, row, rng.integers(0, size, per_class))
        np.add.at(counts[row], estimates, 1)
    return counts.tolist()


def fake_results(
    source: str = "runs/clmr-small/checkpoints/last.pt",
    *,
    quality: float = 1.0,
    seed: int = 0,
    with_map: bool = True,
) -> dict[str, Any]:
    """A results.json-like dict over the seven built-in tasks; ``quality`` scales scores
    between chance (0) and a good encoder (1)."""
    rng = np.random.default_rng(seed)
    seeds = 5

    def score(chance: float, good: float) -> float:
        return chance + quality * (good - chance)

    probe_splits = {"train": 1512, "valid": 324, "test": 324}
    tasks: dict[str, Any] = {
        "style": {
            "kind": "multiclass",
            "description": "style / composer family of the score, 6 classes",
            "split_sizes": probe_splits,
            "main": "accuracy",
            "chance": {"accuracy": 1 / 6, "macro_f1": 1 / 6},
            "metrics": {
                "accuracy": _metric(rng, score(1 / 6, 0.82), 0.015, seeds),
                "macro_f1": _metric(rng, score(1 / 6, 0.80), 0.02, seeds),
            },
            "probe": {"type": "mlp", "weight_decay": 0.001},
            "classes": list(STYLES),
            "confusion": _confusion(rng, 6, 54, score(0, 0.8)),
        },
        "key": {
            "kind": "key",
            "description": "global key after transposition, 24 classes",
            "split_sizes": probe_splits,
            "main": "mirex",
            "chance": {"accuracy": 1 / 24, "mirex": 0.09},
            "metrics": {
                "accuracy": _metric(rng, score(1 / 24, 0.45), 0.02, seeds),
                "mirex": _metric(rng, score(0.09, 0.58), 0.02, seeds),
            },
            "probe": {"type": "linear", "weight_decay": 0.01},
            "classes": sorted(KEYS),
            "confusion": _confusion(rng, 24, 13, score(0, 0.45)),
        },
        "tempo": {
            "kind": "tempo",
            "description": "tempo in BPM",
            "split_sizes": probe_splits,
            "main": "acc1",
            "chance": {"acc1": 0.06, "acc2": 0.2},
            "metrics": {
                "acc1": _metric(rng, score(0.06, 0.35), 0.02, seeds),
                "acc2": _metric(rng, score(0.2, 0.6), 0.02, seeds),
            },
            "probe": {"type": "mlp", "weight_decay": 0.0001},
        },
        "instrument": {
            "kind": "multilabel",
            "description": "instrument families present, 8 tags",
            "split_sizes": probe_splits,
            "main": "roc_auc",
            "chance": {"roc_auc": 0.5, "pr_auc": 0.22},
            "metrics": {
                "roc_auc": _metric(rng, score(0.5, 0.88), 0.01, seeds),
                "pr_auc": _metric(rng, score(0.22, 0.61), 0.015, seeds),
            },
            "probe": {"type": "linear", "weight_decay": 0.001},
            "classes": ["brass", "guitar", "organ", "piano", "reed", "strings", "voice", "wind"],
        },
        "pitch": {
            "kind": "pitch",
            "description": "frame-level pitch class of monophonic clips",
            "split_sizes": {
                "train": 380,
                "valid": 80,
                "test": 82,
                "frames_train": 380000,
                "frames_valid": 80000,
                "frames_test": 82000,
            },
            "main": "accuracy",
            "chance": {"accuracy": 1 / 12},
            "metrics": {"accuracy": _metric(rng, score(1 / 12, 0.52), 0.01, seeds)},
            "probe": {"type": "linear", "weight_decay": 0.0},
            "classes": ["A", "A#", "B", "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#"],
        },
    }
    for name, gallery, good in (("same_piece", 324, 0.7), ("degraded_copy", 324, 0.95)):
        chance_recall = [min(1.0, k / gallery) for k in range(1, 51)]
        recall = [
            score(c, min(1.0, good + 0.3 * np.log10(k))) for k, c in enumerate(chance_recall, 1)
        ]
        tasks[name] = {
            "kind": "retrieval",
            "description": f"{name.replace('_', ' ')} retrieval by cosine similarity",
            "split_sizes": {"query": 324, "gallery": gallery},
            "main": "map",
            "chance": {
                "map": 0.02,
                "mrr": 0.02,
                "recall@1": 1 / gallery,
                "recall@5": 5 / gallery,
                "recall@10": 10 / gallery,
            },
            "metrics": {
                "map": _metric(rng, score(0.02, good - 0.1), 0.02, seeds),
                "mrr": _metric(rng, score(0.02, good - 0.05), 0.02, seeds),
                "recall@1": _metric(rng, recall[0], 0.02, seeds),
                "recall@5": _metric(rng, recall[4], 0.02, seeds),
                "recall@10": _metric(rng, recall[9], 0.02, seeds),
            },
            "curve": {"k": list(range(1, 51)), "recall": recall},
        }
    for name in ("style", "key"):
        main = tasks[name]["main"]
        top = tasks[name]["metrics"][main]["mean"]
        tasks[name]["by_layer"] = {
            str(layer): {main: {"mean": top * (0.55 + 0.1 * layer), "std": 0.02}}
            for layer in range(5)
        }
    results: dict[str, Any] = {
        "source": source,
        "corpus": "/home/user/.cache/musicssl/builtin-v1",
        "created": "2025-03-14T09:26:53",
        "version": "0.1.0",
        "seeds": seeds,
        "tasks": tasks,
        "skipped": ["tempo_octave: the corpus has no tempo-octave labels"],
    }
    if with_map:
        labels = [STYLES[i % 6] for i in range(324)]
        centres = rng.normal(0, 12, (6, 2))
        points = centres[[i % 6 for i in range(324)]] + rng.normal(0, 3, (324, 2))
        results["map"] = {"task": "style", "points": points.tolist(), "labels": labels}
    return results


def fake_baselines() -> dict[str, dict[str, Any]]:
    return {
        "baseline:mfcc": fake_results("baseline:mfcc", quality=0.5, seed=1, with_map=False),
        "baseline:random": fake_results("baseline:random", quality=0.05, seed=2, with_map=False),
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """One full report, shared by the tests that only read it (rendering takes seconds)."""
    results = fake_results()
    baselines = fake_baselines()
    # Hand-set scores without per-seed values: compared as independent (no pairing).
    for system, mean, std in ((results, 0.8123, 0.0114), (baselines["baseline:mfcc"], 0.5, 0.02),
                              (baselines["baseline:random"], 0.8, 0.01)):  # fmt: skip
        system["tasks"]["style"]["metrics"]["accuracy"] = {"mean": mean, "std": std}
    out = tmp_path_factory.mktemp("report")
    return out, write_report(results, out, baselines=baselines)


def test_every_file_is_written(report: tuple[Path, dict[str, Path]]) -> None:
    out, written = report
    expected = {
        "report.md",
        "report.html",
        "figures/scores.png",
        "figures/confusion_style.png",
        "figures/confusion_key.png",
        "figures/map.png",
        "figures/retrieval.png",
        "figures/layers.png",
    }
    assert set(written) == expected
    for relative, path in written.items():
        assert path == out / relative
        assert path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    leftovers = [p.name for p in out.rglob(".*partial*")]
    assert leftovers == []


def test_html_is_self_contained(report: tuple[Path, dict[str, Path]]) -> None:
    _, written = report
    page = written["report.html"].read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 6  # every figure embedded, none linked
    assert base64.b64decode(images[0]) == written["figures/scores.png"].read_bytes()
    assert "http://" not in page and "https://" not in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing else to load
    assert "<link" not in page and "<script" not in page and "@import" not in page
    # the best cell is highlighted, the within-noise one shaded
    assert '<td class="num best">0.812 ± 0.011 ^</td>' in page
    assert '<td class="num near">0.800 ± 0.010 ≈</td>' in page


def test_markdown_table_holds_the_numbers(report: tuple[Path, dict[str, Path]]) -> None:
    _, written = report
    text = written["report.md"].read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| task |"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert columns[3:6] == [
        "runs/clmr-small/checkpoints/last.pt",
        "baseline:mfcc",
        "baseline:random",
    ]
    row = next(line for line in text.splitlines() if line.startswith("| style |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # 0.8123 vs 0.8: |diff| 0.012 <= 2 * sqrt(0.0114² + 0.01²) = 0.030, so within noise
    assert cells == [
        "style",
        "multiclass",
        "accuracy",
        "0.812 ± 0.011 ^",
        "0.500 ± 0.020",
        "0.800 ± 0.010 ≈",
        "0.167",
        "level with random weights, above mfcc",
        "train 1512, valid 324, test 324",
    ]
    pitch = next(line for line in text.splitlines() if line.startswith("| pitch |"))
    assert pitch.endswith("| train 380, valid 80, test 82 |")  # frame counts only in details
    assert "train 380 clips (380000 f0 values)" in text
    assert "2025-03-14 09:26:53" in text
    assert "runs/clmr-small/checkpoints/last.pt" in text.splitlines()[0]
    # a skip shared by every system is listed once
    assert text.count("tempo_octave: the corpus has no tempo-octave labels") == 1
    assert "![Headline score per task](figures/scores.png)" in text


def test_keeps_pairs_the_seeds_of_one_test_set(tmp_path: Path) -> None:
    # Unpaired, 0.880 ± 0.005 against 0.867 ± 0.005 is level: 0.013 <= 2 * sqrt(2) * 0.005.
    # Paired, every seed is 0.013 above (std of the differences ~0): above.
    results, random = fake_results(with_map=False), fake_results("baseline:random", seed=2)
    for system, values in ((results, [0.875, 0.880, 0.885]), (random, [0.862, 0.867, 0.872])):
        system["tasks"]["style"]["metrics"]["accuracy"] = {
            "mean": float(np.mean(values)), "std": 0.005, "values": values
        }  # fmt: skip
    written = write_report(results, tmp_path, baselines={"baseline:random": random})
    row = next(
        line for line in written["report.md"].read_text().splitlines() if "| style |" in line
    )
    assert "| above random weights |" in row
    # Differences that change sign from seed to seed: level (mean 0.01, std 0.02).
    results["tasks"]["style"]["metrics"]["accuracy"]["values"] = [0.892, 0.857, 0.891]
    written = write_report(results, tmp_path, baselines={"baseline:random": random})
    row = next(
        line for line in written["report.md"].read_text().splitlines() if "| style |" in line
    )
    assert "| level with random weights |" in row


def test_keys_are_ordered_by_mode_then_tonic() -> None:
    # C major (0), A major (9), then C# minor (1), Bb minor (10)
    assert key_order(["A major", "Bb minor", "C major", "C# minor"]) == [2, 0, 3, 1]
    assert key_order(["C major", "not a key"]) is None


def test_mae_is_lower_is_better(tmp_path: Path) -> None:
    results = fake_results(with_map=False)
    results["tasks"] = {
        "loudness": {
            "kind": "regression",
            "main": "mae",
            "split_sizes": {"train": 10, "valid": 5, "test": 5},
            "chance": {"mae": 6.0},
            "metrics": {"mae": {"mean": 2.0, "std": 0.1}, "r2": {"mean": 0.7, "std": 0.02}},
        }
    }
    worse = {"tasks": {"loudness": {**results["tasks"]["loudness"]}}}
    worse["tasks"]["loudness"]["metrics"] = {"mae": {"mean": 3.0, "std": 0.1}}
    write_report(results, tmp_path, baselines={"baseline:logmel": worse})
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| loudness |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2:5] == ["mae (lower is better)", "2.000 ± 0.100 ^", "3.000 ± 0.100"]
    assert "Higher is better for every metric except mae (lower is better)." in text
    assert "Higher is better except for mae (↓). A score off the 0 to 1 scale has an axis of " in (
        text
    )
    assert "its own (loudness mae)." in text


def test_the_reading_note_explains_only_what_the_table_holds(tmp_path: Path) -> None:
    text = write_report(fake_results(with_map=False), tmp_path)["report.md"].read_text()
    note = text.split("## Summary\n\n", 1)[1].split("\n", 1)[0]
    assert note.startswith("Scores are mean ± std over seeds on the test split. Higher is better.")
    assert "mae" not in note and "'keeps'" not in note and "@transfer" not in note  # alone
    caption = text.split("figures/scores.png)\n\n", 1)[1].split("\n", 1)[0]
    assert caption.endswith("Higher is better.") and "mae" not in caption


def test_without_baselines_or_map(tmp_path: Path) -> None:
    results = fake_results(with_map=False)
    del results["tasks"]["style"]["by_layer"], results["tasks"]["key"]["by_layer"]
    written = write_report(results, tmp_path)
    assert "figures/map.png" not in written and "figures/layers.png" not in written
    text = written["report.md"].read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| style |"))
    accuracy = results["tasks"]["style"]["metrics"]["accuracy"]
    # a lone system has no best to mark
    assert f"| {accuracy['mean']:.3f} ± {accuracy['std']:.3f} |" in row


def test_bad_results_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MusicSSLError, match="tasks"):
        write_report({"source": "x"}, tmp_path)
    with pytest.raises(MusicSSLError, match="baseline:mfcc"):
        write_report(fake_results(), tmp_path, baselines={"baseline:mfcc": {"source": "y"}})


def test_the_layer_table_names_each_branchs_layers_beside_the_random_weights(
    tmp_path: Path,
) -> None:
    results = fake_results(with_map=False)
    parts = ["timbre layer 0", "timbre layer 1", "key layer 0", "key layer 1", "joint"]
    results["layer_labels"] = {str(layer): label for layer, label in enumerate(parts)}
    results["tasks"]["key"]["best_layer"] = "3"
    random = fake_results("baseline:random", quality=0.05, seed=2, with_map=False)
    del random["tasks"]["key"]["by_layer"]["4"]  # a layer the baseline lacks reads "—"
    written = write_report(results, tmp_path, baselines={"baseline:random": random})
    assert "figures/layers.png" in written
    text = written["report.md"].read_text(encoding="utf-8")
    start = text.index("### key (")
    lines = [line for line in text[start:].splitlines() if line.startswith("| ")]
    header = lines[lines.index(next(ln for ln in lines if ln.startswith("| layer |")))]
    assert header == (
        "| layer | runs/clmr-small/checkpoints/last.pt: mirex | baseline:random: mirex | "
        "against random weights |"
    )
    layer_lines = lines[lines.index(header) + 1 :][:5]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in layer_lines]
    mine, theirs = results["tasks"]["key"]["by_layer"], random["tasks"]["key"]["by_layer"]
    assert [row[0] for row in cells] == [
        "0 (timbre layer 0)",
        "1 (timbre layer 1)",
        "2 (key layer 0)",
        "3 (key layer 1) (best on valid)",
        "4 (joint)",
    ]
    for layer, row in enumerate(cells):
        assert row[1] == f"{mine[str(layer)]['mirex']['mean']:.3f} ± 0.020"
        expected = theirs.get(str(layer))
        assert row[2] == (f"{expected['mirex']['mean']:.3f} ± 0.020" if expected else "—")
    assert cells[4][3] == "—"  # nothing to set layer 4 against


def test_each_layer_is_set_against_the_same_layer_of_the_random_weights_seed_by_seed(
    tmp_path: Path,
) -> None:
    from musicssl.evaluate.results import TaskResult

    base = [0.60, 0.64, 0.62, 0.66, 0.63]
    # Per-seed differences from the random weights' same layer: 0.02 every seed is above
    # (std 0), though 0.02 is within twice the independent spread (2 * sqrt(2) * 0.016 =
    # 0.045); +-0.03 around 0 is level; -0.05 every seed is below.
    shifts = {"0": [0.02] * 5, "1": [0.03, -0.03, 0.02, -0.02, 0.0], "2": [-0.05] * 5}

    def layers(offsets: dict[str, list[float]]) -> dict[str, Any]:
        out = {}
        for layer, shift in offsets.items():
            values = [b + d for b, d in zip(base, shift, strict=True)]
            std = float(np.std(values, ddof=1))
            out[layer] = {"mirex": {"mean": float(np.mean(values)), "std": std, "values": values}}
        return out

    results = fake_results(with_map=False)
    random = fake_results("baseline:random", quality=0.05, seed=2, with_map=False)
    results["tasks"]["key"]["by_layer"] = layers(shifts)
    random["tasks"]["key"]["by_layer"] = layers({layer: [0.0] * 5 for layer in shifts})
    # results.json keeps each layer's per-seed values, which the pairing needs
    task = TaskResult.from_dict({"name": "key", **results["tasks"]["key"]})
    assert task.to_dict()["by_layer"]["1"]["mirex"]["values"] == pytest.approx(
        results["tasks"]["key"]["by_layer"]["1"]["mirex"]["values"]
    )
    text = write_report(results, tmp_path, baselines={"baseline:random": random})["report.md"]
    key = text.read_text(encoding="utf-8").split("### key (", 1)[1]
    rows = [line for line in key.splitlines() if re.match(r"\| \d", line)][:3]
    verdicts = [[c.strip() for c in row.strip("|").split("|")][3] for row in rows]
    assert verdicts == ["above", "level", "below"]


def test_the_report_says_when_the_seeds_are_too_few_for_the_noise_rule(tmp_path: Path) -> None:
    for seeds, warned in ((2, True), (3, False)):
        results = fake_results(with_map=False)
        results["seeds"] = seeds
        text = write_report(results, tmp_path / str(seeds))["report.md"].read_text()
        line = next(ln for ln in text.splitlines() if ln.startswith("- **seeds**"))
        assert line.startswith(f"- **seeds**: {seeds} (")
        assert ("too few for the noise rule" in line) is warned


def test_a_tasks_notes_are_in_its_details(tmp_path: Path) -> None:
    results = fake_results(with_map=False)
    results["tasks"]["pitch"]["notes"] = ["used 30000 of 380000 train frames (at random)"]
    results["tasks"]["style"]["note"] = "2 files could not be embedded and were left out"
    written = write_report(results, tmp_path)
    text = written["report.md"].read_text(encoding="utf-8")
    pitch = text[text.index("### pitch (") :]
    assert "- note: used 30000 of 380000 train frames (at random)" in pitch.split("### ")[1]
    style = text[text.index("### style (") :].split("### ")[1]
    assert "- note: 2 files could not be embedded and were left out" in style
    page = written["report.html"].read_text(encoding="utf-8")
    assert "<li>note: used 30000 of 380000 train frames (at random)</li>" in page


def test_the_legend_keeps_long_labels_inside_the_figure() -> None:
    from musicssl.evaluate.report.canvas import figure_legend, new_figure

    figure = new_figure(7.6, 3.7)
    ax = figure.subplots()
    for label in ("emb/simclr-shortchunk-thirty.npz", "baseline:mfcc", "baseline:logmel",
                  "baseline:random", "baseline:tempogram", "chance"):  # fmt: skip
        ax.plot([0, 1], [0, 1], label=label)
    figure_legend(figure, [ax])
    figure.canvas.draw()
    legend = figure.legends[0].get_window_extent()
    whole = figure.bbox
    assert whole.x0 <= legend.x0 and legend.x1 <= whole.x1


def test_an_npz_that_names_its_model_is_set_against_that_models_random_weights(
    tmp_path: Path,
) -> None:
    def report_text(results: dict[str, Any], out: str) -> tuple[str, str]:
        written = write_report(results, tmp_path / out, baselines=fake_baselines())
        text = written["report.md"].read_text(encoding="utf-8")
        row = next(line for line in text.splitlines() if line.startswith("| style |"))
        return text, [cell.strip() for cell in row.strip("|").split("|")][-2]

    results = fake_results(with_map=False)
    results["source"] = "e.npz"  # of unknown make: random weights are one more network's
    assert report_text(results, "unknown")[1] == "above mfcc"
    results["embedded_with"] = "hf:/models/hubert"
    text, keeps = report_text(results, "named")
    assert keeps == "above random weights, above mfcc"
    assert "hf:/models/hubert (baseline:random: its architecture)" in text
