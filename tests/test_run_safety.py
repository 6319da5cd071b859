"""A run folder under faults: one writer at a time, resumable from any point, one-line errors."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicssl import checkpoint, cli
from musicssl.cli import main
from musicssl.errors import MusicSSLError
from musicssl.files import folder_lock

RECIPE = """\
# A tiny SimCLR for the tests.
encoder:
  name: sample_cnn
  options: {{num_blocks: 4, channels: [8, 8, 16, 16, 16, 32], sample_rate: 16000}}
method: {{name: simclr, options: {{hidden_dim: 16, projection_dim: 8}}}}
augment: {{name: none}}
data: {{store: {store}, workers: 0}}
train: {{steps: 4, batch_size: 4, checkpoint_every: 2, log_every: 2}}
"""


@pytest.fixture(autouse=True)
def no_process_settings(monkeypatch):
    monkeypatch.setattr(cli, "configure_torch", lambda: True)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("safety")
    (root / "audio").mkdir()
    for number in range(8):
        noise = np.random.default_rng(number).uniform(-0.3, 0.3, 16000).astype(np.float32)
        sf.write(str(root / "audio" / f"{number}.wav"), noise, 16000)
    assert main(["data", "index", str(root / "audio"), "--out", str(root / "m.jsonl"),
                 "--split-by", "file"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in (root / "m.jsonl").read_text().splitlines()]
    with open(root / "m.jsonl", "w") as handle:  # every clip in train, for a tiny store
        handle.writelines(json.dumps({**row, "split": "train"}) + "\n" for row in rows)
    assert main(["data", "pack", str(root / "m.jsonl"), "--out", str(root / "store")]) == 0
    path = root / "recipe.yaml"
    path.write_text(RECIPE.format(store=root / "store"))
    return path


def one_line(capsys) -> str:
    """The one error line (progress lines aside), with no traceback anywhere."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith("pretrain: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_second_writer_of_a_run_is_refused_while_the_first_holds_it(recipe, tmp_path, capsys):
    run = tmp_path / "run"
    with folder_lock(run, busy="another musicssl pretrain is writing this run now"):
        assert main(["pretrain", str(recipe), "--out", str(run)]) == 1
        assert "another musicssl pretrain is writing this run now" in one_line(capsys)
        assert sorted(p.name for p in run.iterdir()) == [".lock"]
    # Once the first writer is gone, the folder (holding only the lock) takes a run.
    assert main(["pretrain", str(recipe), "--out", str(run)]) == 0
    assert checkpoint.latest(run).name == "step-00000004"


def test_a_second_report_writer_is_refused(tmp_path, capsys):
    out = tmp_path / "report"
    with folder_lock(out, busy="another musicssl evaluate is writing this report now"):
        assert main(["evaluate", "baseline:mfcc", "--out", str(out)]) == 1
        assert "another musicssl evaluate is writing this report now" in one_line(capsys)


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_start(recipe, tmp_path, capsys):
    run = tmp_path / "run"
    from musicssl.recipe import Recipe

    checkpoint.start_run(run, Recipe.load(recipe))  # what a run killed at step 1 leaves
    assert not checkpoint.is_run(run)
    assert main(["pretrain", "--resume", str(run)]) == 0
    assert checkpoint.latest(run).name == "step-00000004"
    said = capsys.readouterr().out
    assert (
        f"pretrain: {run} stopped before its first checkpoint; it starts again from step 0" in said
    )


def test_a_run_shorter_than_its_warm_up_is_noted(recipe, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["pretrain", str(recipe), "--out", str(run), "optim.warmup_steps=4"]
    assert main(argv) == 0
    assert "note: optim.warmup_steps=4 is not under train.steps=4" in capsys.readouterr().out
    assert main(["pretrain", str(recipe), "--out", str(tmp_path / "other")]) == 0
    assert "warmup_steps" not in capsys.readouterr().out


def test_resume_with_new_settings_is_refused_naming_the_way_to_train_longer(
    recipe, tmp_path, capsys
):
    run = tmp_path / "run"
    assert main(["pretrain", str(recipe), "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(run), "train.steps=8"]) == 1
    line = one_line(capsys)
    assert f"train.init_from={run} --out NEW_RUN" in line
    assert checkpoint.latest(run).name == "step-00000004"
    # The weights are as readable as the rest of the run (safetensors writes them 0600).
    mask = os.umask(0)
    os.umask(mask)
    for name in ("encoder.safetensors", "method.safetensors", "recipe.yaml"):
        mode = (checkpoint.latest(run) / name).stat().st_mode & 0o777
        assert mode == 0o666 & ~mask, (name, oct(mode))


def test_a_run_that_lost_its_latest_file_keeps_its_checkpoints(recipe, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", str(recipe), "--out", str(run), "train.checkpoint_every=2"]) == 0
    (run / "latest").unlink()
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == ["step-00000002", "step-00000004"]
    capsys.readouterr()
    # Neither a resume nor a new run in the folder starts from step 0 (which would rotate
    # the kept checkpoints away).
    for args in (["--resume", str(run)], [str(recipe), "--out", str(run)]):
        assert main(["pretrain", *args]) == 1
        line = one_line(capsys)
        assert f"{run}: holds checkpoints (step-00000002, step-00000004) but no" in line
        assert f"write one name into {run / 'latest'} to resume from it (--resume)" in line
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == kept
    # Reading its encoder says the same, not that the run has no checkpoint yet.
    with pytest.raises(MusicSSLError) as caught:
        checkpoint.checkpoint_folder(run)
    assert str(caught.value) == (
        f"{run}: a run whose 'latest' file is missing; name one of its checkpoints "
        f"({run / 'checkpoints' / kept[0]}, {run / 'checkpoints' / kept[1]}), or write the "
        f"newest's name into {run / 'latest'}"
    )
    (run / "latest").write_text("step-00000002\n")
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(run)]) == 0
    assert checkpoint.latest(run).name == "step-00000004"
    assert f"pretrain: going on from step 2 of {run}\n" in capsys.readouterr().out


def test_resume_of_a_checkpoint_or_a_folder_of_other_files_says_what_to_resume(
    recipe, tmp_path, capsys
):
    run = tmp_path / "run"
    assert main(["pretrain", str(recipe), "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(run / "checkpoints" / "step-00000004")]) == 1
    assert one_line(capsys).endswith(f"resume the run: musicssl pretrain --resume {run}")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "recipe.yaml").write_text("method: {name: simclr}\n")
    (mine / "notes.txt").write_text("mine\n")
    assert main(["pretrain", "--resume", str(mine)]) == 1
    line = one_line(capsys)
    assert "are not a musicssl run (notes.txt, recipe.yaml); nothing to resume" in line
    assert "--out" not in line


def test_a_users_files_named_as_a_runs_are_never_taken_for_a_run(recipe, tmp_path, capsys):
    mine = tmp_path / "experiment"  # a recipe kept where its run will go, and old metrics
    mine.mkdir()
    written = {
        "recipe.yaml": "# my experiment\nbase: simclr-shortchunk-cpu\n",
        "metrics.csv": "step,loss\n1,0.5\n",
    }
    for name, text in written.items():
        (mine / name).write_text(text)
    assert main(["pretrain", str(recipe), "--out", str(mine)]) == 1
    line = one_line(capsys)
    assert f"{mine}: the folder holds files that are not a musicssl run (metrics.csv, " in line
    assert main(["pretrain", "--resume", str(mine)]) == 1
    assert "are not a musicssl run (metrics.csv, recipe.yaml); nothing to resume" in one_line(
        capsys
    )
    (mine / "metrics.csv").unlink()  # a hand-written recipe alone is no run killed early
    assert main(["pretrain", "--resume", str(mine)]) == 1
    assert "are not a musicssl run (recipe.yaml); nothing to resume" in one_line(capsys)
    assert sorted(p.name for p in mine.iterdir()) == ["recipe.yaml"]
    assert (mine / "recipe.yaml").read_text() == written["recipe.yaml"]


def test_a_run_is_not_resumed_on_a_store_packed_again(recipe, tmp_path, capsys):
    root = recipe.parent
    store = tmp_path / "store"
    shutil.copytree(root / "store", store)
    run = tmp_path / "run"
    mine = tmp_path / "recipe.yaml"
    mine.write_text(RECIPE.format(store=store))
    assert main(["pretrain", str(mine), "--out", str(run), "train.steps=6"]) == 0
    (run / "latest").write_text("step-00000004\n")  # as if killed after step 4
    rows = [json.loads(line) for line in (root / "m.jsonl").read_text().splitlines()[:6]]
    six = tmp_path / "six.jsonl"  # six of the clips, their paths whole (the manifest moved)
    six.write_text("".join(json.dumps({**r, "path": str(root / r["path"])}) + "\n" for r in rows))
    assert main(["data", "pack", str(six), "--out", str(store)]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(run)]) == 1
    assert (
        f"{store}: not the store {run} trained on, or packed again since (8 clips then, 6 "
        "now)" in one_line(capsys)
    )
    assert checkpoint.latest(run).name == "step-00000004"


def test_a_run_whose_store_moved_resumes_when_told_where(recipe, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(recipe.parent / "store", store)
    run = tmp_path / "run"
    mine = tmp_path / "recipe.yaml"
    mine.write_text(RECIPE.format(store=store))
    assert main(["pretrain", str(mine), "--out", str(run), "train.steps=6"]) == 0
    (run / "latest").write_text("step-00000004\n")  # as if killed after step 4
    store.rename(tmp_path / "moved")
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(run)]) == 1
    assert one_line(capsys) == (
        f"musicssl: error: {store}: the store {run} trains on is not there; if it has moved, "
        f"give its new place: musicssl pretrain --resume {run} data.store=STORE"
    )
    assert main(["pretrain", "--resume", str(run), f"data.store={tmp_path / 'moved'}"]) == 0
    assert checkpoint.latest(run).name == "step-00000006"
    assert f"store: {tmp_path / 'moved'}" in (run / "recipe.yaml").read_text()
    # Another store in that place is refused by its identity; no other setting may change.
    other = tmp_path / "other"
    rows = (recipe.parent / "m.jsonl").read_text().splitlines()[:6]
    six = tmp_path / "six.jsonl"
    six.write_text(
        "".join(
            json.dumps({**json.loads(r), "path": str(recipe.parent / json.loads(r)["path"])}) + "\n"
            for r in rows
        )
    )
    assert main(["data", "pack", str(six), "--out", str(other)]) == 0
    (run / "latest").write_text("step-00000004\n")
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(run), f"data.store={other}"]) == 1
    assert f"{other}: not the store {run} trained on" in one_line(capsys)
    everything = [json.loads(r) for r in (recipe.parent / "m.jsonl").read_text().splitlines()]
    reordered = tmp_path / "reordered.jsonl"  # the same clips, in another order
    reordered.write_text("".join(json.dumps({**r, "path": str(recipe.parent / r["path"])}) + "\n"
                                 for r in reversed(everything)))  # fmt: skip
    assert main(["data", "pack", str(reordered), "--out", str(tmp_path / "reordered")]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(run), f"data.store={tmp_path / 'reordered'}"]) == 1
    assert "(8 clips then and now, from another manifest)" in one_line(capsys)
    assert main(["pretrain", "--resume", str(run), "train.steps=9"]) == 1
    assert "give only RUN_DIR, or data.store=STORE where its store has moved" in one_line(capsys)


def test_a_run_whose_recipe_was_edited_is_not_resumed(recipe, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", str(recipe), "--out", str(run), "train.steps=6"]) == 0
    (run / "latest").write_text("step-00000004\n")  # as if killed after step 4
    edited = (run / "recipe.yaml").read_text().replace("steps: 6", "steps: 5")
    assert edited != (run / "recipe.yaml").read_text()
    (run / "recipe.yaml").write_text(edited)
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(run)]) == 1
    line = one_line(capsys)
    assert f"{run / 'recipe.yaml'}: train.steps is 5, but the run trained with 6" in line
    assert checkpoint.latest(run).name == "step-00000004"


def test_resume_of_a_folder_that_is_no_run_is_one_line(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert main(["pretrain", "--resume", str(tmp_path / "mine")]) == 1
    assert "not a musicssl run folder" in one_line(capsys)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_overrides_after_resume_say_what_to_do(recipe, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", str(recipe), "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(run), "train.steps=8"]) == 1
    assert "give only RUN_DIR" in one_line(capsys)


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(
    recipe, tmp_path, capsys, monkeypatch
):
    run = tmp_path / "run"
    real = checkpoint.save_file

    def full_after_step_2(tensors, path, *args, **kwargs):
        if "step-00000004" in str(path):
            from safetensors import SafetensorError

            raise SafetensorError("Error while serializing: No space left on device (os error 28)")
        return real(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", full_after_step_2)
    assert main(["pretrain", str(recipe), "--out", str(run)]) == 1
    line = one_line(capsys)
    assert "cannot write the checkpoint" in line and "No space left" in line
    assert checkpoint.latest(run).name == "step-00000002"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002"]


def test_a_recipe_that_is_not_utf8_is_one_line(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("# caf\xe9\nencoder: {name: sample_cnn}\n".encode("latin-1"))
    assert main(["pretrain", str(path), "--out", str(tmp_path / "run")]) == 1
    assert "not UTF-8" in one_line(capsys)
    assert not (tmp_path / "run").exists()


def test_ctrl_c_of_pretrain_names_the_checkpoint_and_how_to_go_on(recipe, tmp_path, capsys,
                                                                 monkeypatch):  # fmt: skip
    run = tmp_path / "run"
    real = checkpoint.write_checkpoint

    def interrupted_after_step_2(*args, step, **kwargs):
        real(*args, step=step, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "write_checkpoint", interrupted_after_step_2)
    assert main(["pretrain", str(recipe), "--out", str(run)]) == 130
    line = one_line(capsys)
    assert "step-00000002 is kept" in line and f"pretrain --resume {run}" in line


def test_sigterm_stops_pretrain_as_ctrl_c_does_with_status_143(recipe, tmp_path, capsys,
                                                               monkeypatch):  # fmt: skip
    import signal
    import time

    run = tmp_path / "run"
    real = checkpoint.write_checkpoint

    def terminated_after_step_2(*args, step, **kwargs):
        real(*args, step=step, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler ends a job
        time.sleep(5)  # the signal arrives before this ends

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(checkpoint, "write_checkpoint", terminated_after_step_2)
    assert main(["pretrain", str(recipe), "--out", str(run)]) == 143
    line = one_line(capsys)
    assert line.startswith("musicssl: error: terminated: the checkpoint step-00000002 is kept")
    assert f"pretrain --resume {run}" in line
    assert signal.getsignal(signal.SIGTERM) == before  # the command's handler is gone with it


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGTERM are POSIX")
def test_sigterm_to_the_whole_group_stops_pretrain_and_its_workers_in_one_line(recipe, tmp_path):
    # As `timeout`, `kill -TERM -PGID` or a cluster's scheduler stop a job: the data loader's
    # workers get the signal too.
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "musicssl", "pretrain", str(recipe), "data.workers=2",
            "train.steps=100000", "--out", str(run)]  # fmt: skip
    job = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (run / "latest").exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # well into the steps after the first checkpoint, workers loading
    os.killpg(job.pid, signal.SIGTERM)
    _, err = job.communicate(timeout=120)
    lines = [line for line in err.splitlines() if not line.startswith("pretrain:")]
    assert job.returncode == 143, err
    assert "Traceback" not in err and "bug" not in err, err
    assert len(lines) == 1 and lines[0].startswith("musicssl: error: terminated: the checkpoint")


def test_the_lock_is_free_once_its_holder_is_gone(tmp_path):
    with folder_lock(tmp_path / "f", busy="busy"):
        with pytest.raises(MusicSSLError, match="busy"), folder_lock(tmp_path / "f", busy="busy"):
            pass
    with folder_lock(tmp_path / "f", busy="busy"):
        assert os.path.exists(tmp_path / "f" / ".lock")


HOLDER = """
import multiprocessing, os, signal, sys, time
from musicssl.files import folder_lock
with folder_lock(sys.argv[1], busy="busy"):
    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
    child.start()  # as a DataLoader worker: forked while the lock is held
    print(child.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _lock_frees_within(folder, *, seconds):
    """Whether ``folder``'s lock can be taken within ``seconds``: a forked worker closes its copy
    as it starts, which on a loaded machine may come a moment after its parent has died (a
    worker that kept the copy would hold the lock for all of its 60 s)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with folder_lock(folder, busy="busy"):
                return True
        except MusicSSLError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


@pytest.mark.skipif(sys.platform == "win32", reason="needs os.fork, as DataLoader workers are made")
def test_a_killed_holders_forked_children_do_not_keep_its_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "f")],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout is not None
    orphan = int(holder.stdout.readline())
    assert holder.wait(timeout=60) == -signal.SIGKILL
    try:
        os.kill(orphan, 0)  # the worker outlives its killed parent ...
        assert _lock_frees_within(tmp_path / "f", seconds=10)  # ... and holds no lock
    finally:
        os.kill(orphan, signal.SIGKILL)


def test_corpus_build_refuses_a_folder_of_the_users(tmp_path, capsys):
    (tmp_path / "mine" / "audio").mkdir(parents=True)
    (tmp_path / "mine" / "audio" / "bach-bwv365-00.wav").write_bytes(b"mine")
    assert main(["corpus", "build", "--size", "tiny", "--out", str(tmp_path / "mine")]) == 1
    assert "not a musicssl corpus" in one_line(capsys)
    assert (tmp_path / "mine" / "audio" / "bach-bwv365-00.wav").read_bytes() == b"mine"


def test_data_index_never_overwrites_a_labelled_manifest_it_did_not_write(tmp_path, capsys):
    (tmp_path / "audio").mkdir()
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, 8000).astype(np.float32)
    sf.write(str(tmp_path / "audio" / "a.wav"), noise, 8000)
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"path": "audio/a.wav", "style": "mine", "split": "train"}\n')
    before = labels.read_bytes()
    argv = ["data", "index", str(tmp_path / "audio"), "--splits", str(labels), "--out"]
    assert main([*argv, str(labels)]) == 1
    assert "did not write" in one_line(capsys)
    assert labels.read_bytes() == before
    # Its own manifest it replaces (a second index of a grown folder).
    assert main([*argv, str(tmp_path / "m.jsonl")]) == 0
    assert main([*argv, str(tmp_path / "m.jsonl")]) == 0


def test_a_background_writers_failure_is_one_line(capsys):
    import threading

    def fail():
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "/runs/r/tensorboard/events")

    previous = threading.excepthook
    threading.excepthook = cli._background_failure
    try:
        thread = threading.Thread(target=fail)
        thread.start()
        thread.join()
    finally:
        threading.excepthook = previous
    line = one_line(capsys)
    assert "background writer stopped" in line and "/runs/r/tensorboard/events" in line


def test_a_missing_checkpoint_or_folder_is_named(tmp_path):
    with pytest.raises(MusicSSLError, match="no such run or checkpoint folder"):
        checkpoint.checkpoint_folder(tmp_path / "nope")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "latest").write_text("step-00000010\n")
    with pytest.raises(MusicSSLError, match="names step-00000010, which is missing"):
        checkpoint.checkpoint_folder(tmp_path / "run")


def test_resume_of_a_finished_run_says_so_and_how_to_train_longer(recipe, tmp_path, capsys):
    run, store = tmp_path / "run", tmp_path / "store"
    shutil.copytree(recipe.parent / "store", store)
    assert main(["pretrain", str(recipe), f"data.store={store}", "--out", str(run)]) == 0
    capsys.readouterr()
    shutil.rmtree(store)  # a finished run needs no store to say so
    assert main(["pretrain", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"{run} already finished at step 4" in out
    assert out.endswith(f"checkpoint: {run / 'checkpoints' / 'step-00000004'}\n")
    assert f"musicssl pretrain {run / 'recipe.yaml'} train.steps=... --out NEW_RUN" in out
    hint = f"musicssl pretrain {run / 'recipe.yaml'} train.init_from={run} --out NEW_RUN"
    assert hint in out  # and it runs as written, the store back in place
    shutil.copytree(recipe.parent / "store", store)
    assert main([*hint.split()[1:-1], str(tmp_path / "longer")]) == 0
    weights = run / "checkpoints" / "step-00000004" / "encoder.safetensors"
    weights.write_bytes(b"")  # the weights it offers to train on from, lost
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(run)]) == 1
    assert one_line(capsys).startswith(f"musicssl: error: {weights}: cannot read the weights")


def _a_step_that_is_not_a_number(path: Path) -> None:
    import torch

    torch.save({"optimizer": {}, "step": "five"}, path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_text("garbage\n"),  # torch: UnpicklingError
        lambda path: path.write_bytes(b""),  # torch: EOFError
        _a_step_that_is_not_a_number,
    ],
    ids=["garbage", "empty", "step-not-a-number"],
)
def test_a_damaged_training_state_is_one_line_that_says_how_to_go_on(
    recipe, tmp_path, capsys, damage
):
    run = tmp_path / "run"
    assert main(["pretrain", str(recipe), "--out", str(run)]) == 0
    # A run stopped after step 2, whose checkpoint was then damaged; step 4 was kept beside it.
    (run / "latest").write_text("step-00000002\n")
    state = run / "checkpoints" / "step-00000002" / "state.pt"
    damage(state)
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(run)]) == 1
    assert one_line(capsys) == (
        f"musicssl: error: {state}: damaged (not a training state); to read or resume another "
        f"checkpoint, write its name (step-00000004) into {run}/latest; or start a new run "
        "with --out"
    )
    shutil.rmtree(run / "checkpoints" / "step-00000004")
    assert main(["pretrain", "--resume", str(run)]) == 1
    assert one_line(capsys) == (
        f"musicssl: error: {state}: damaged (not a training state); no other checkpoint is "
        "kept: start a new run with --out"
    )


@pytest.mark.parametrize("text", ["", "\n", "  \n"])
def test_an_empty_latest_file_is_named_as_empty(recipe, tmp_path, capsys, text):
    from musicssl.recipe import Recipe

    run = tmp_path / "run"
    checkpoint.start_run(run, Recipe.load(recipe))
    (run / "checkpoints" / "step-00000002").mkdir(parents=True)
    (run / "latest").write_text(text)
    expected = (
        f"{run}/latest: empty; to read or resume a checkpoint, write its name (step-00000002) "
        f"into {run}/latest; or start a new run with --out"
    )
    with pytest.raises(MusicSSLError) as raised:
        checkpoint.checkpoint_folder(run)
    assert str(raised.value) == expected
    assert main(["pretrain", "--resume", str(run)]) == 1
    assert one_line(capsys) == f"musicssl: error: {expected}"


def test_ctrl_c_before_the_run_folder_exists_offers_no_resume(recipe, tmp_path, capsys,
                                                              monkeypatch):  # fmt: skip
    # As while `data.corpus=/a/typo` builds a corpus there, before the run folder is made.
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("musicssl.demo.with_builtin_store", interrupted)
    run = tmp_path / "o18"
    assert main(["pretrain", str(recipe), "--out", str(run)]) == 130
    assert one_line(capsys) == (
        f"musicssl: error: interrupted before {run} held a run, so nothing was saved there; "
        "run the same command again"
    )
    assert not run.exists()


def test_ctrl_c_before_the_first_checkpoint_offers_a_resume_from_step_0(recipe, tmp_path, capsys,
                                                                        monkeypatch):  # fmt: skip
    real = checkpoint.start_run

    def interrupted_after_start(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "start_run", interrupted_after_start)
    run = tmp_path / "run"
    assert main(["pretrain", str(recipe), "--out", str(run)]) == 130
    assert one_line(capsys) == (
        "musicssl: error: interrupted: no checkpoint yet (it starts again from step 0); "
        f"continue with `musicssl pretrain --resume {run}`"
    )


def test_a_run_refused_before_its_first_checkpoint_leaves_no_folder(recipe, tmp_path, capsys):
    # More crops per batch than the store holds clips: refused inside the run, before any
    # checkpoint; the folder this call made goes with it.
    run = tmp_path / "run"
    assert main(["pretrain", str(recipe), "train.batch_size=100000", "--out", str(run)]) == 1
    assert "batch" in one_line(capsys) and not run.exists()
    # A folder that was there before (empty) stays.
    run.mkdir()
    assert main(["pretrain", str(recipe), "train.batch_size=100000", "--out", str(run)]) == 1
    one_line(capsys)
    assert run.is_dir()


def test_ctrl_c_of_a_corpus_build_says_it_resumes(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("musicssl.builtin.build_corpus", interrupted)
    out = tmp_path / "corpus"
    assert main(["corpus", "build", "--out", str(out)]) == 130
    assert one_line(capsys) == (
        f"musicssl: error: interrupted: the clips finished in {out} are kept; run the same "
        "command again to finish the build"
    )


def test_a_refused_evaluation_leaves_no_report_folder(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["evaluate", "baseline:nope", "--out", str(out)]) == 1
    assert "unknown" in one_line(capsys) and not out.exists()
    out.mkdir()  # a folder that was there before stays
    assert main(["evaluate", "baseline:nope", "--out", str(out)]) == 1
    one_line(capsys)
    assert out.is_dir()


def test_reading_a_run_with_steps_left_says_which_step_it_reads(recipe, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", str(recipe), "--out", str(run)]) == 0
    audio = tmp_path / "clip.wav"
    sf.write(str(audio), np.zeros(16000, np.float32), 16000)
    capsys.readouterr()
    assert main(["embed", str(run), str(audio), "--out", str(tmp_path / "done.npz")]) == 0
    assert "not finished" not in capsys.readouterr().err  # all 4 steps taken
    # As a run stopped (or still training) after its first checkpoint stands.
    (run / "latest").write_text("step-00000002\n")
    assert main(["embed", str(run), str(audio), "--out", str(tmp_path / "half.npz")]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"note: {run} has not finished training (step 2 of 4; still running, or stopped: "
        f"musicssl pretrain --resume {run} goes on); embed reads its latest checkpoint"
    )
    # evaluate says the same before its own work (here refused: no corpus there).
    assert main(["evaluate", str(run), "--corpus", str(tmp_path / "none"), "--cache",
                 str(tmp_path / "cache"), "--out", str(tmp_path / "report")]) == 1  # fmt: skip
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.endswith("goes on); evaluate reads its latest checkpoint") and len(rest) == 1
