"""Expected failures of the musicssl command: non-zero, one line naming the path or option, no
traceback, and every file that was there before left byte for byte as it was."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicssl import cli
from musicssl.cli import describe_os_error, main


@pytest.fixture(autouse=True)
def no_process_settings(monkeypatch):
    # main() flushes subnormal floats for the whole process: not inside the test session.
    monkeypatch.setattr(cli, "configure_torch", lambda: True)


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


@pytest.fixture
def area(tmp_path: Path):
    """A folder of two short audio files, an earlier index of it, and a plain file."""
    audio = tmp_path / "audio"
    audio.mkdir()
    for number in range(2):
        noise = np.random.default_rng(number).uniform(-0.3, 0.3, 8000).astype(np.float32)
        sf.write(str(audio / f"{number}.wav"), noise, 8000)
    assert main(["data", "index", str(audio), "--out", str(tmp_path / "m.jsonl")]) == 0
    (tmp_path / "notes.txt").write_text("a plain file, not a folder\n")
    return tmp_path


def fails(argv: list[str], capsys, *, status: int | None = None, naming: str = "") -> str:
    """Run ``argv``; check the failure is one clean line naming ``naming``; return the line."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0 and (status is None or code == status), (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and naming in lines[0], lines[0]
    assert lines[0].startswith("musicssl")
    return lines[0]


def index_into(area: Path, out: str) -> list[str]:
    return ["data", "index", str(area / "audio"), "--out", out]


@pytest.mark.parametrize(
    "argv",
    [
        lambda a: index_into(a, f"{a}/notes.txt/m.jsonl"),
        lambda a: ["corpus", "build", "--out", f"{a}/notes.txt/corpus"],
        lambda a: ["data", "pack", f"{a}/m.jsonl", "--out", f"{a}/notes.txt/store"],
        lambda a: ["evaluate", "baseline:mfcc", "--out", f"{a}/notes.txt/deep/report"],
        lambda a: ["pretrain", "simclr-shortchunk-cpu", "--out", f"{a}/notes.txt/run"],
        lambda a: ["demo", "--out", f"{a}/notes.txt"],
    ],
    ids=["index", "corpus", "pack", "evaluate", "pretrain", "demo"],
)
def test_an_output_under_a_regular_file_is_refused_before_any_work(area, capsys, argv):
    before = snapshot(area)
    fails(argv(area), capsys, status=2, naming="notes.txt")
    assert snapshot(area) == before


def test_an_output_that_is_a_folder_where_a_file_is_wanted(area, capsys):
    before = snapshot(area)
    fails(index_into(area, str(area / "audio")), capsys, status=2, naming="is a folder")
    assert snapshot(area) == before


def test_an_output_in_a_folder_we_may_not_write_is_refused_before_any_work(
    area, capsys, monkeypatch
):
    # Tests run as root, which may write anywhere: the folder's answer is simulated.
    locked = area / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode)
    )
    before = snapshot(area)
    line = fails(index_into(area, f"{locked}/m.jsonl"), capsys, status=2, naming=str(locked))
    assert "permission denied" in line
    assert snapshot(area) == before and not any(locked.iterdir())


def test_an_output_under_proc_fails_in_one_line(area, capsys):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    before = snapshot(area)
    fails(index_into(area, "/proc/musicssl-test/m.jsonl"), capsys, naming="/proc/musicssl-test")
    assert snapshot(area) == before and not Path("/proc/musicssl-test").exists()


def test_an_output_under_a_symlink_loop_fails_in_one_line(area, capsys):
    loop = area / "loop"
    loop.symlink_to(loop)
    before = snapshot(area)
    line = fails(index_into(area, f"{loop}/m.jsonl"), capsys, status=2, naming=str(loop))
    assert "symbolic links" in line
    assert snapshot(area) == before


@pytest.mark.parametrize(
    ("error", "naming"),
    [
        (RuntimeError("Symlink loop from '/a/loop'"), "/a/loop: too many levels of symbolic"),
        (MemoryError(), "out of memory"),
    ],
)
def test_failures_raised_as_other_kinds_are_still_one_line(
    area, capsys, monkeypatch, error, naming
):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr("musicssl.pack.pack", failing)
    before = snapshot(area)
    fails(
        ["data", "pack", f"{area}/m.jsonl", "--out", f"{area}/s"], capsys, status=1, naming=naming
    )
    assert snapshot(area) == before


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),  # a write(): no file name
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        PermissionError(errno.EACCES, "Permission denied", "m.partial", None, "m.jsonl"),
        OSError(errno.EROFS, "Read-only file system", "m.partial", None, "m.jsonl"),
        IsADirectoryError(errno.EISDIR, "Is a directory", "m.jsonl"),
    ],
    ids=["ENOSPC", "EDQUOT", "EACCES", "EROFS", "EISDIR"],
)
def test_a_failing_write_leaves_the_previous_output_as_it_was(area, capsys, monkeypatch, error):
    # A new file, so that the index has something new to write over its previous manifest.
    sf.write(str(area / "audio" / "new.wav"), np.full(8000, 0.1, np.float32), 8000)
    before = snapshot(area)

    def failing_replace(source, target):
        raise error

    monkeypatch.setattr(os, "replace", failing_replace)
    out = str(area / "m.jsonl")
    line = fails(index_into(area, out), capsys, status=1)
    assert errno.errorcode[error.errno] in line
    assert (out if error.filename is None else error.filename) in line
    assert snapshot(area) == before  # the previous manifest, and no partial file left


@pytest.mark.parametrize(
    ("argv", "naming"),
    [
        (["embed", "{a}", "{a}/audio", "--out", "{a}/e.npz", "--hop", "0"], "--hop: must be"),
        (["embed", "{a}", "{a}/audio", "--out", "{a}/e.npz", "--hop", "-1"], "--hop: must be"),
        (["embed", "{a}", "{a}/audio", "--out", "{a}/e.npz", "--hop", "nan"], "--hop: must be"),
        (["embed", "{a}", "{a}/audio", "--out", "{a}/e.npz", "--batch-size", "0"], "--batch-size"),
        (["embed", "{a}", "{a}/audio", "--out", "{a}/e.npz", "--layer", "top"], "--layer"),
        (["embed", "{a}", "{a}/audio", "--out", "{a}/e.npz", "--device", "gpu"], "--device"),
        (["embed", "{a}", "{a}/audio", "--out", "{a}/e.npz", "--window", "3"], "--window"),
        (["embed", "{a}/nowhere", "{a}/audio", "--out", "{a}/e.npz"], "nowhere: no such folder"),
        (["embed", "{a}/notes.txt", "{a}/audio", "--out", "{a}/e.npz"], "notes.txt: not a folder"),
        (["data", "index", "{a}/nowhere", "--out", "{a}/n.jsonl"], "nowhere: no such folder"),
        (["data", "index", "{a}/audio", "--out", "{a}/n.jsonl", "--workers", "0"], "--workers"),
        (
            ["data", "index", "{a}/audio", "--out", "{a}/n.jsonl", "--splits", "{a}/no.csv"],
            "no.csv",
        ),
        (["data", "pack", "{a}/m.jsonl", "--out", "{a}/s", "--sr", "16k"], "--sr: '16k'"),
        (["data", "pack", "{a}/none.jsonl", "--out", "{a}/s"], "none.jsonl: no such file"),
        (["data", "pack", "{a}/audio", "--out", "{a}/s"], "audio: not a file"),
        (["corpus", "build", "--out", "{a}/c", "--size", "huge"], "--size"),
        (["corpus", "build", "--out", "{a}/c", "--seed", "-1"], "--seed"),
        (["evaluate", "baseline:mfcc", "--out", "{a}/r", "--baselines", "mfc"], "'mfc'"),
        (["evaluate", "{a}/missing.npz", "--out", "{a}/r"], "missing.npz"),
        (["evaluate", "baseline:mfcc", "--out", "{a}/r", "--seeds", "0"], "--seeds"),
        (["demo", "--minutes", "0"], "--minutes"),
        (["demo", "--minutes", "inf"], "--minutes"),
        (["compare", "{a}/audio", "{a}/gone"], "gone: no such folder"),
        (["pretrain", "simclr-shortchunk-cpu", "steps", "--out", "{a}/run"], "'steps'"),
        (["pretrain", "simclr-shortchunk-cpu", "--out", "{a}/r", "--resume", "{a}"], "--resume"),
        (["pretrain", "simclr-shortchunk-cpu", "--out", "{a}/run", "--bogus"], "--bogus"),
        (["pretrain", "--resume", "{a}/no-run"], "no-run: no such folder"),
        (["evaluate"], "SOURCE"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_options_are_refused_while_parsing(area, capsys, argv, naming):
    before = snapshot(area)
    fails([word.format(a=area) for word in argv], capsys, status=2, naming=naming)
    assert snapshot(area) == before


def test_an_unknown_recipe_names_itself_and_the_packaged_ones(area, capsys):
    before = snapshot(area)
    line = fails(["pretrain", "simclr-cpu", "--out", f"{area}/run"], capsys, naming="simclr-cpu")
    assert "simclr-shortchunk-cpu" in line
    fails(["pretrain", f"{area}/mine.yaml", "--out", f"{area}/run"], capsys, naming="mine.yaml")
    assert snapshot(area) == before


@pytest.mark.parametrize(
    ("argv", "naming"),
    [
        (["train.precision=64-true"], "train.precision"),
        (["train.steps=many"], "train.steps"),
        (["size=full"], "size=full"),
        (["data.nothing=1"], "nothing"),
    ],
)
def test_bad_overrides_fail_in_one_line_before_training(area, capsys, argv, naming):
    before = snapshot(area)
    run = f"{area}/run"
    fails(["pretrain", "simclr-shortchunk-cpu", *argv, "--out", run], capsys, naming=naming)
    assert snapshot(area) == before and not Path(run).exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["pretrain", "clmr"],  # the paper's setup: bf16 and compiled graphs on a CUDA GPU
        ["pretrain", "simclr-shortchunk-cpu", "train.accelerator=cuda"],
        ["pretrain", "simclr-shortchunk-cpu", "train.accelerator=gpu", "train.devices=2"],
    ],
)
def test_cuda_asked_for_on_a_machine_without_it(area, capsys, monkeypatch, argv):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = snapshot(area)
    run = area / "run"
    line = fails([*argv, "--out", str(run)], capsys, status=1, naming="train.accelerator=")
    assert "CUDA is not available on this machine" in line
    assert snapshot(area) == before and not run.exists()
    # The way to a CPU run names every setting of the recipe a CPU run must change.
    hint = line.split("or pass ")[1].split()
    assert hint[0] == "train.accelerator=cpu"
    assert ("train.compile=false" in hint) == (argv[1] == "clmr")
    assert ("train.precision=32-true" in hint) == (argv[1] == "clmr")


@pytest.mark.parametrize("accelerator", ["auto", "cpu"])
def test_fsdp_without_cuda_is_one_line(area, capsys, monkeypatch, accelerator):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = snapshot(area)
    run = area / "run"
    argv = ["pretrain", "simclr-shortchunk-cpu", "train.strategy=fsdp",
            f"train.accelerator={accelerator}", "--out", str(run)]  # fmt: skip
    line = fails(argv, capsys, status=1, naming="train.strategy=fsdp: ")
    assert "FSDP shards the model over CUDA GPUs" in line and "train.strategy=ddp" in line
    assert snapshot(area) == before and not run.exists()


def test_float16_on_a_cpu_is_one_line_not_a_silent_bf16_run(area, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = area / "run"
    argv = ["pretrain", "simclr-shortchunk-cpu", "train.precision=16-mixed", "--out", str(run)]
    line = fails(argv, capsys, status=1, naming="train.precision=16-mixed: ")
    assert "float16 autocast needs a GPU; on a CPU pass train.precision=bf16-mixed" in line
    assert not run.exists()


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_cuda_device_on_a_machine_without_it(area, capsys, monkeypatch, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for verb in (
        ["embed", str(area), str(area / "audio"), "--out", f"{area}/e.npz"],
        ["evaluate", "baseline:mfcc", "--out", f"{area}/r"],
    ):
        line = fails([*verb, "--device", device], capsys, status=2, naming="--device")
        assert "CUDA is not available on this machine" in line


@pytest.fixture
def no_mps(monkeypatch):
    import torch

    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_mps_asked_for_on_a_machine_without_it(area, capsys, no_mps):
    wav = str(area / "audio" / "0.wav")
    for verb in (
        ["embed", str(area), str(area / "audio"), "--out", f"{area}/e.npz"],
        ["key", str(area), wav],
        ["tempo", str(area), wav],
        ["pitch", str(area), wav, "--out", f"{area}/f0.csv"],
        ["evaluate", "baseline:mfcc", "--out", f"{area}/r"],
    ):
        line = fails([*verb, "--device", "mps"], capsys, status=2, naming="--device: mps: ")
        assert "MPS is not available on this machine" in line and "use --device cpu" in line
    before = snapshot(area)
    run = area / "run"
    line = fails(["pretrain", "simclr-shortchunk-cpu", "train.accelerator=mps", "--out",
                  str(run)], capsys, status=1, naming="train.accelerator=mps: ")  # fmt: skip
    assert "MPS is not available on this machine" in line and "train.accelerator=cpu" in line
    assert snapshot(area) == before and not run.exists()


def test_an_interrupt_is_one_line_and_status_130(area, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("musicssl.pack.pack", interrupted)
    before = snapshot(area)
    line = fails(["data", "pack", f"{area}/m.jsonl", "--out", f"{area}/s"], capsys, status=130)
    assert line == (
        f"musicssl: error: interrupted: what was packed into {area}/s (saved every "
        "few seconds) is kept; run the same command again to go on from there"
    )
    assert snapshot(area) == before
    # The demo says what it keeps: its run resumes and its embeddings are cached.
    monkeypatch.setattr("musicssl.demo.run_demo", interrupted)
    line = fails(["demo", "--out", f"{area}/demo"], capsys, status=130)
    assert line == (
        "musicssl: error: interrupted: the corpus, the run's last checkpoint and the cached "
        "embeddings are kept; run the same command again to go on from there"
    )


def test_a_library_error_is_its_own_one_line(area, capsys):
    (area / "m.jsonl").write_text('{"path": "audio/0.wav", "duration": \n')
    before = snapshot(area)
    fails(
        ["data", "pack", f"{area}/m.jsonl", "--out", f"{area}/s"],
        capsys,
        status=1,
        naming="m.jsonl",
    )
    assert snapshot(area) == before


def test_a_bug_shows_its_traceback_and_asks_for_a_report(area, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("musicssl.pack.pack", broken)
    assert main(["data", "pack", f"{area}/m.jsonl", "--out", f"{area}/s"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError" in err
    assert "please report it" in err.strip().splitlines()[-1]


def run_command(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ctrl_c_in_a_real_process(area):
    # SIGINT as a terminal sends it, in the middle of the work.
    result = run_command(
        f"""
        import os, signal, sys
        # As in a terminal: a job started in the background by a shell inherits SIGINT ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import musicssl.pack
        def pack(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            signal.pause()
        musicssl.pack.pack = pack
        from musicssl.cli import main
        sys.exit(main(["data", "pack", {str(area / "m.jsonl")!r}, "--out", {str(area / "s")!r}]))
        """
    )
    assert result.returncode == 130
    assert result.stderr.strip().startswith("musicssl: error: interrupted: what was packed into")


def test_a_bad_output_from_the_installed_command(area):
    before = snapshot(area)
    result = subprocess.run(
        [sys.executable, "-m", "musicssl", *index_into(area, f"{area}/notes.txt/m.jsonl")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert "notes.txt" in line and "is not a folder" in line
    assert snapshot(area) == before


def test_os_errors_are_described_by_path_reason_and_errno_name():
    assert (
        describe_os_error(FileExistsError(errno.EEXIST, "File exists", "a/b"))
        == "a/b: File exists (EEXIST)"
    )
    assert (
        describe_os_error(OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b"))
        == "a -> b: Invalid cross-device link (EXDEV)"
    )
    assert (
        describe_os_error(OSError(errno.ENOSPC, "No space left on device"), "runs/x")
        == "No space left on device (ENOSPC), while writing runs/x"
    )
    assert describe_os_error(OSError("odd")) == "odd"
    assert describe_os_error(NotADirectoryError(errno.ENOTDIR, "Not a directory", b"f/x")) == (
        "f/x: Not a directory (ENOTDIR)"
    )


def test_a_built_corpus_we_may_not_write_is_read_and_a_folder_to_build_in_is_refused(
    area, monkeypatch
):
    import argparse

    from musicssl.cli_options import corpus_folder

    shared, empty = area / "shared", area / "empty"
    for folder in (shared, empty):
        folder.mkdir()
    (shared / "manifest.jsonl").write_text("")  # a finished corpus holds its manifest
    real_access = os.access
    monkeypatch.setattr(  # both read-only (tests run as root: the answer is simulated)
        os,
        "access",
        lambda path, mode: Path(path) not in (shared, empty) and real_access(path, mode),
    )
    assert corpus_folder(str(shared)) == str(shared)
    with pytest.raises(argparse.ArgumentTypeError, match="permission denied"):
        corpus_folder(str(empty / "corpus"))  # no corpus yet, none can be built


def test_a_default_cache_we_may_not_write_is_refused_before_any_work(area, capsys, monkeypatch):
    locked = area / "locked"
    locked.mkdir()
    monkeypatch.setenv("MUSICSSL_CACHE", str(locked / "cache"))
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode)
    )
    line = fails(["evaluate", "baseline:mfcc", "--out", str(area / "report")], capsys,
                 status=1, naming=str(locked / "cache"))  # fmt: skip
    assert "(permission denied); give --cache DIR (or set MUSICSSL_CACHE)" in line
    assert not (area / "report").exists()
