"""musicssl demo end to end, on the tiny corpus and a few seconds of pretraining."""

import csv
import json
from pathlib import Path

import torch

from musicssl.cli import main
from musicssl.demo import DEMO_RECIPE, _pretrain


def _demo(tmp_path: Path, minutes: str) -> int:
    folders = ["--out", str(tmp_path / "demo"), "--corpus", str(tmp_path / "corpus")]
    return main(["demo", *folders, "--minutes", minutes, "--seeds", "2", "--corpus-size",
                 "tiny", "--cache", str(tmp_path / "cache")])  # fmt: skip


def test_demo_goes_from_nothing_to_a_report(tmp_path: Path, capsys):
    code = _demo(tmp_path, "0.05")
    assert code == 0
    printed = capsys.readouterr().out
    report = tmp_path / "demo" / "report" / "report.html"
    assert f"Report: {report}" in printed
    results = json.loads((tmp_path / "demo" / "report" / "results.json").read_text())
    assert {"style", "same_piece", "degraded_copy"} <= set(results["tasks"])
    assert set(results["baselines"]) == {"baseline:mfcc", "baseline:logmel", "baseline:random"}
    # The budget ended pretraining early. The tiny corpus has one validation piece per style,
    # so the fast probe, which holds out whole pieces, says it cannot score (on the small
    # corpus it logs its scores: tests/test_monitor.py).
    assert (
        "note: the fast probe scores nothing (no probe_knn or probe_linear in metrics.csv): "
        "no 'style' class" in printed
    )
    with open(tmp_path / "demo" / "run" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert int(rows[-1]["step"]) < 1200

    # Again with another budget: the finished run is kept as it is, and says so.
    assert _demo(tmp_path, "0.2") == 0
    printed = capsys.readouterr().out
    run = tmp_path / "demo" / "run"
    step = int(rows[-1]["step"])
    assert f"[demo] 2/3 pretraining: {run} finished at step {step}; a new --out" in printed
    assert "for about" not in printed and "already finished" not in printed
    with open(run / "metrics.csv", newline="") as handle:
        assert list(csv.DictReader(handle)) == rows

    # A run that has steps left (as one killed) goes on with the budget it began with.
    state_file = run / "checkpoints" / f"step-{step:08d}" / "state.pt"
    state = torch.load(state_file, weights_only=True)
    torch.save({**state, "horizon": step + 2}, state_file)
    _pretrain(run, corpus=tmp_path / "corpus", corpus_size="tiny", minutes=0.2, progress=False)
    printed = capsys.readouterr().out
    assert f"note: {run} began with --minutes 0.05 and goes on so" in printed
    assert f"2/3 pretraining {DEMO_RECIPE} for about 0.05 minutes" in printed
    with open(run / "metrics.csv", newline="") as handle:
        assert int(list(csv.DictReader(handle))[-1]["step"]) == step + 2


def test_demo_refuses_a_report_folder_of_the_users_before_any_work(tmp_path: Path, capsys):
    (tmp_path / "demo" / "report").mkdir(parents=True)
    (tmp_path / "demo" / "report" / "notes.txt").write_text("mine")
    assert _demo(tmp_path, "0.05") == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"musicssl: error: --out {tmp_path / 'demo'}: ") and "--out" in line
    assert not (tmp_path / "corpus").exists()  # nothing was built
    assert (tmp_path / "demo" / "report" / "notes.txt").read_text() == "mine"
