"""musicssl demo end to end, on the tiny corpus and a few seconds of pretraining."""

import csv
import json
from pathlib import Path

from musicssl.cli import main


def test_demo_goes_from_nothing_to_a_report(tmp_path: Path, capsys):
    code = main(
        [
            "demo",
            "--out",
            str(tmp_path / "demo"),
            "--corpus",
            str(tmp_path / "corpus"),
            "--minutes",
            "0.05",
            "--seeds",
            "2",
            "--corpus-size",
            "tiny",
            "--cache",
            str(tmp_path / "cache"),
        ]
    )
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
    assert "note: the fast probe leaves its columns empty: no 'style' class" in printed
    with open(tmp_path / "demo" / "run" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert int(rows[-1]["step"]) < 1200
