"""Tests of evaluate.compare: one table over runs, within-noise marks on hand-made numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from musicssl.errors import MusicSSLError
from musicssl.evaluate.report.compare import compare_table
from musicssl.evaluate.report.reading import Score, noise_marks, within_noise


def _task(main: str, mean: float, std: float) -> dict[str, Any]:
    return {"kind": "multiclass", "main": main, "metrics": {main: {"mean": mean, "std": std}}}


def _run(folder: Path, source: str, tasks: dict[str, dict[str, Any]]) -> Path:
    folder.mkdir(parents=True)
    results = {"source": source, "seeds": 5, "tasks": tasks}
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return folder


def _rows(table: str) -> dict[str, list[str]]:
    """Table rows by run name, cells stripped."""
    rows = {}
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith("| run "):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_within_noise_on_hand_made_numbers() -> None:
    # 2 * sqrt(0.01² + 0.01²) = 0.0283
    assert within_noise((0.80, 0.01), (0.79, 0.01))
    assert not within_noise((0.80, 0.01), (0.60, 0.01))
    assert within_noise((0.80, 0.01), (0.772, 0.01))  # 0.028 <= 0.0283
    assert not within_noise((0.80, 0.01), (0.771, 0.01))  # 0.029 > 0.0283
    assert within_noise((0.5, 0.0), (0.5, 0.0))
    assert noise_marks([(0.80, 0.01), (0.79, 0.01), (0.60, 0.01), None]) == ["^", "≈", "", ""]
    assert noise_marks([(2.0, 0.1), (3.0, 0.1)], lower_is_better=True) == ["^", ""]
    assert noise_marks([(0.5, 0.1), None]) == ["", ""]  # nothing to compare with


def test_within_noise_pairs_the_seeds_of_one_test_set() -> None:
    test = (("test", 324), ("train", 1512))
    # Each seed 0.013 above: the differences' std is 0.0006, 0.013 > 0.0012.
    a = Score(0.880, 0.006, (0.873, 0.887, 0.880), test)
    b = Score(0.867, 0.006, (0.860, 0.873, 0.867), test)
    assert not within_noise(a, b)
    assert within_noise(a[:2], b[:2])  # as independent: 0.013 <= 2 * sqrt(2) * 0.006 = 0.017
    # Differences 0.03, -0.01, 0.01: mean 0.01, std 0.02, so within noise.
    assert within_noise(Score(0.88, 0.02, (0.89, 0.86, 0.89), test),
                        Score(0.87, 0.0, (0.86, 0.87, 0.88), test))  # fmt: skip
    # Another test set, another number of seeds or a single seed: no pairing.
    assert within_noise(a, b._replace(test_set=(("test", 300), ("train", 1512))))
    assert within_noise(a, Score(0.867, 0.006, (0.860, 0.873), test))
    assert not within_noise(Score(0.9, 0.0, (0.9,), test), Score(0.8, 0.0, (0.8,), test))


def test_table_marks_best_and_within_noise(tmp_path: Path) -> None:
    a = _run(
        tmp_path / "clmr",
        "runs/clmr/last.pt",
        {"style": _task("accuracy", 0.80, 0.01), "tempo": _task("mae", 4.0, 0.5)},
    )
    b = _run(
        tmp_path / "byol",
        "runs/byol/last.pt",
        {"style": _task("accuracy", 0.79, 0.01), "tempo": _task("mae", 9.0, 0.5)},
    )
    c = _run(tmp_path / "mfcc", "baseline:mfcc", {"style": _task("accuracy", 0.60, 0.01)})
    table = compare_table([a, b, c])
    lines = table.splitlines()
    header = [cell.strip() for cell in lines[0].split("|")[1:-1]]
    assert header == ["run", "style accuracy", "tempo mae (lower better)"]
    assert _rows(table) == {
        "clmr": ["0.800 ± 0.010 ^", "4.000 ± 0.500 ^"],
        "byol": ["0.790 ± 0.010 ≈", "9.000 ± 0.500"],
        "mfcc": ["0.600 ± 0.010", "—"],
    }
    table_lines = lines[:5]
    assert len({len(line) for line in table_lines}) == 1  # aligned columns
    assert set(lines[1]) == {"|", "-"}  # markdown separator row
    assert "- clmr: runs/clmr/last.pt" in lines
    assert "- mfcc: baseline:mfcc" in lines
    legend = " ".join(lines[lines.index("- mfcc: baseline:mfcc") + 2 :])
    assert "≈ within noise of the best" in legend and "— task not run" in legend


def test_same_folder_names_are_told_apart(tmp_path: Path) -> None:
    a = _run(tmp_path / "clmr" / "eval", "a.pt", {"key": _task("mirex", 0.5, 0.02)})
    b = _run(tmp_path / "byol" / "eval", "b.pt", {"key": _task("mirex", 0.4, 0.02)})
    assert set(_rows(compare_table([a, b]))) == {"clmr/eval", "byol/eval"}


def test_missing_or_broken_results_name_the_folder(tmp_path: Path) -> None:
    good = _run(tmp_path / "good", "a.pt", {"key": _task("mirex", 0.5, 0.02)})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MusicSSLError, match=r"empty: no results\.json"):
        compare_table([good, empty])
    with pytest.raises(MusicSSLError, match="nowhere: no such folder"):
        compare_table([good, tmp_path / "nowhere"])
    (empty / "results.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(MusicSSLError, match=r"empty/results\.json: not valid JSON"):
        compare_table([empty])
    (empty / "results.json").write_text("[]", encoding="utf-8")
    with pytest.raises(MusicSSLError, match="no 'tasks'"):
        compare_table([empty])
    with pytest.raises(MusicSSLError, match="at least one"):
        compare_table([])


def test_hand_edited_results_are_one_line_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "edited"
    folder.mkdir()
    path = folder / "results.json"
    cases = {
        '{"tasks": {"style": 5}}': "task 'style': expected a task result (a mapping), got 5",
        '{"tasks": {"key": {"main": "mirex", "metrics": {"mirex": {"mean": "high"}}}}}': (
            "task 'key': metric 'mirex' has a non-numeric 'mean': \"high\""
        ),
        '{"tasks": {"key": {"main": "mirex", "metrics": [1]}}}': "'metrics' must be a mapping",
        '{"tasks": {"key": {"main": "mirex", "metrics": {"mirex": 0.5}}}}': (
            "metric 'mirex' must be a mapping with 'mean'"
        ),
    }
    for text, reason in cases.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(MusicSSLError) as error:
            compare_table([folder])
        message = str(error.value)
        assert "\n" not in message
        assert message.startswith(f"{path}: ") and reason in message, message


def test_a_report_that_did_not_finish_is_refused(tmp_path: Path) -> None:
    folder = _run(tmp_path / "cut", "a.pt", {"key": _task("mirex", 0.5, 0.02)})
    results = json.loads((folder / "results.json").read_text())
    (folder / "results.json").write_text(json.dumps({**results, "report_files": None}))
    with pytest.raises(MusicSSLError, match=r"cut: the evaluation did not finish writing"):
        compare_table([folder])
    listed = {**results, "report_files": ["report.md", "report.html"]}
    (folder / "results.json").write_text(json.dumps(listed))
    (folder / "report.md").write_text("# report")
    # Once the list is written the scores are whole: a folder that kept only some of the
    # report's pages (results.json copied alone, say) compares.
    assert "0.500 ± 0.020" in compare_table([folder])


def test_runs_on_different_corpora_are_flagged(tmp_path: Path) -> None:
    runs = []
    for name, corpus in (("a", "data/corpus"), ("b", "data/corpus"), ("c", "data/other")):
        folder = _run(tmp_path / name, f"runs/{name}", {"style": _task("accuracy", 0.8, 0.01)})
        results = json.loads((folder / "results.json").read_text())
        (folder / "results.json").write_text(json.dumps({**results, "corpus": corpus}))
        runs.append(folder)
    flagged = " ".join(compare_table(runs).split())
    assert "Not comparable: these runs were evaluated with different corpora" in flagged
    assert "c: data/other" in flagged
    assert "different corpora" not in compare_table(runs[:2])
    mine = _run(tmp_path / "mine", "runs/mine", {"style": _task("accuracy", 0.8, 0.01)})
    results = json.loads((mine / "results.json").read_text())
    (mine / "results.json").write_text(json.dumps({**results, "corpus": ""}))  # no corpus read
    assert "different corpora" not in compare_table([runs[0], mine])
    results = json.loads((runs[1] / "results.json").read_text())
    (runs[1] / "results.json").write_text(json.dumps({**results, "seeds": 1}))
    flagged = " ".join(compare_table(runs[:2]).split())
    assert "evaluated with different numbers of seeds (a: 5, b: 1)" in flagged


def test_a_task_name_that_holds_other_data_in_one_run_is_flagged(tmp_path: Path) -> None:
    def tempo(description: str) -> dict[str, Any]:
        return {**_task("acc1", 0.5, 0.01), "description": description,
                "split_sizes": {"train": 8, "valid": 2, "test": 2}}  # fmt: skip

    builtin = "tempo in quarter notes per minute (60 to 180)"
    runs = [
        _run(tmp_path / "a", "runs/a", {"tempo": tempo(builtin)}),
        _run(tmp_path / "b", "runs/b", {"tempo": tempo(builtin)}),
        _run(tmp_path / "c", "runs/c", {"tempo": tempo("tempo task from tempo.csv (12 files)")}),
    ]
    flagged = " ".join(compare_table(runs).split())
    assert (
        "Not comparable: task 'tempo' is not the same data in every run (a: tempo in quarter "
        "notes per minute (60 to 180); b: tempo in quarter notes per minute (60 to 180); c: "
        "tempo task from tempo.csv (12 files)); its column is left unmarked."
    ) in flagged
    # No best and no within-noise marks across other data; the same data is marked.
    assert all(cells == ["0.500 ± 0.010"] for cells in _rows(compare_table(runs)).values())
    assert "Not comparable" not in compare_table(runs[:2])
    assert _rows(compare_table(runs[:2]))["a"] == ["0.500 ± 0.010 ^"]
    # The same task on other frames (an encoder's frame rate): the split sizes are said.
    other = {**tempo(builtin), "split_sizes": {"train": 8, "valid": 2, "test": 3}}
    runs.append(_run(tmp_path / "d", "runs/d", {"tempo": other}))
    flagged = " ".join(compare_table([runs[0], runs[3]]).split())
    assert (
        'is not the same data in every run (a: {"test": 2, "train": 8, "valid": 2}; d: '
        '{"test": 3, "train": 8, "valid": 2})'
    ) in flagged


def test_a_run_whose_report_warns_says_so_beside_its_name(tmp_path: Path) -> None:
    runs = [_run(tmp_path / name, f"runs/{name}", {"style": _task("accuracy", 0.8, 0.01)})
            for name in ("a", "b")]  # fmt: skip
    results = json.loads((runs[1] / "results.json").read_text())
    note = "runs/b trained on the test split (data.splits=all): its test scores are not held out"
    (runs[1] / "results.json").write_text(json.dumps({**results, "notes": [note]}))
    flagged = " ".join(compare_table(runs).split())
    assert f"- b: runs/b; its report warns: {note}" in flagged
    assert "- a: runs/a; its report warns" not in flagged


def test_two_checkpoints_of_one_run_are_told_apart(tmp_path: Path) -> None:
    runs = [_run(tmp_path / name, "runs/mae", {"style": _task("accuracy", 0.7, 0.01)})
            for name in ("early", "late")]  # fmt: skip
    for folder, step in zip(runs, ("step-00000010", "step-00000060"), strict=True):
        results = json.loads((folder / "results.json").read_text())
        results["checkpoint"] = f"runs/mae/checkpoints/{step}"
        (folder / "results.json").write_text(json.dumps(results))
    table = compare_table(runs)
    assert "- early: runs/mae (step-00000010)" in table
    assert "- late: runs/mae (step-00000060)" in table


def test_a_report_given_twice_is_refused(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", "runs/a", {"key": _task("accuracy", 0.5, 0.01)})
    with pytest.raises(MusicSSLError, match=f"compare: the report {a.resolve()} is given twice"):
        compare_table([a, a.parent / "a" / ".." / "a"])


def test_a_run_and_its_baseline_are_compared_seed_by_seed(tmp_path: Path) -> None:
    # 0.880 against 0.867 with std 0.006 each: within noise as independent scores (0.013 <=
    # 0.017), but every seed is 0.013 above, so paired the baseline is not near the best.
    sizes = {"train": 1512, "valid": 324, "test": 324}
    run = _run(tmp_path / "mae", "runs/mae", {"pitch": {
        **_task("accuracy", 0.880, 0.006), "split_sizes": sizes}})  # fmt: skip
    results = json.loads((run / "results.json").read_text())
    results["tasks"]["pitch"]["metrics"]["accuracy"]["values"] = [0.873, 0.887, 0.880]
    results["baselines"] = {"baseline:random": {"pitch": {"accuracy": {
        "mean": 0.867, "std": 0.006, "values": [0.860, 0.874, 0.867]}}}}  # fmt: skip
    (run / "results.json").write_text(json.dumps(results))
    assert _rows(compare_table([run])) == {
        "mae": ["0.880 ± 0.006 ^"],
        "baseline:random": ["0.867 ± 0.006"],
    }
    del results["baselines"]["baseline:random"]["pitch"]["accuracy"]["values"]
    (run / "results.json").write_text(json.dumps(results))
    assert _rows(compare_table([run]))["baseline:random"] == ["0.867 ± 0.006 ≈"]


def test_one_folder_given_as_a_string_is_one_run(tmp_path: Path) -> None:
    folder = _run(tmp_path / "only", "runs/only", {"style": _task("accuracy", 0.7, 0.01)})
    assert _rows(compare_table(str(folder))) == _rows(compare_table([folder]))


def test_the_baselines_beside_the_runs_are_rows_and_each_random_architecture_its_own(
    tmp_path: Path,
) -> None:
    def beside(folder: Path, source: str, score: float, random: float) -> Path:
        run = _run(folder, source, {"key": _task("accuracy", score, 0.01)})
        results = json.loads((run / "results.json").read_text())
        results["baselines"] = {
            "baseline:logmel": {"key": {"accuracy": {"mean": 0.7, "std": 0.01}}},
            "baseline:random": {"key": {"accuracy": {"mean": random, "std": 0.01}}},
        }
        (run / "results.json").write_text(json.dumps(results))
        return run

    cnn = beside(tmp_path / "cnn", "runs/cnn", 0.5, 0.3)
    hubert = beside(tmp_path / "hubert", "hf:models/hubert", 0.6, 0.4)
    table = compare_table([cnn, hubert])
    assert _rows(table) == {
        "cnn": ["0.500 ± 0.010"],
        "hubert": ["0.600 ± 0.010"],
        "baseline:logmel": ["0.700 ± 0.010 ^"],  # alike beside both: one row
        "baseline:random (cnn)": ["0.300 ± 0.010"],  # another network beside each
        "baseline:random (hubert)": ["0.400 ± 0.010"],
    }
    said = " ".join(table.split())
    assert (
        "- baseline:random (hubert): baseline:random as evaluated beside hubert, its source's"
        in said
    )
