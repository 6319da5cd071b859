import subprocess
import sys

import pytest

from musicssl.cli import build_parser, main


def test_help_lists_every_verb():
    result = subprocess.run(
        [sys.executable, "-m", "musicssl", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for verb in ("corpus", "data", "pretrain", "embed"):
        assert verb in result.stdout


def test_bad_input_is_one_clear_line_and_exit_code_1(tmp_path, capsys):
    assert main(["data", "index", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m")]) == 1
    assert "nowhere: not a folder" in capsys.readouterr().err


def test_overrides_may_follow_options(monkeypatch):
    seen = {}
    parser = build_parser()
    parser._subparsers._group_actions[0].choices["pretrain"].set_defaults(
        run=lambda args: seen.update(vars(args))
    )
    monkeypatch.setattr("musicssl.cli.build_parser", lambda: parser)
    assert main(["pretrain", "r.yaml", "a.b=1", "--out", "x", "train.steps=5"]) == 0
    assert seen["overrides"] == ["a.b=1", "train.steps=5"] and seen["out"] == "x"
    with pytest.raises(SystemExit):
        main(["pretrain", "r.yaml", "--out", "x", "--bogus"])
