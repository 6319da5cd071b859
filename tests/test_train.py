import csv
import functools
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file
from torch import nn

from musicssl.budget import FIT_STEPS, TimeBudget, last_step_within
from musicssl.checkpoint import latest as latest_checkpoint
from musicssl.checkpoint import load_training_state
from musicssl.corpus import index_folder
from musicssl.embed import load
from musicssl.errors import MusicSSLError
from musicssl.methods import METHODS, Method
from musicssl.pack import pack
from musicssl.recipe import OptimSettings, Recipe
from musicssl.runlog import RunLog, TrainingDiverged
from musicssl.train import _draw_seed, build_parts, learning_rate_factor, pretrain
from musicssl.train_data import StepBatches, step_groups, training_store

RECIPE = """
encoder:
  name: sample_cnn
  options: {{num_blocks: 4, channels: [8, 8, 16, 16, 16, 32], sample_rate: 16000}}
method: {{name: {method}, options: {{hidden_dim: 32, projection_dim: 16}}}}
augment: {{name: clmr, options: {{pitch_kind: tape}}}}
data: {{store: {store}, workers: 0, splits: all}}
optim: {{lr: 1.0e-3}}
train: {{steps: {steps}, batch_size: 8, checkpoint_every: 4, log_every: 2, seed: 1}}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    (root / "audio").mkdir()
    for number in range(20):
        t = np.arange(8000) / 8000
        clip = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) + rng.normal(0, 0.01, 8000)
        sf.write(str(root / "audio" / f"{number}.wav"), clip.astype(np.float32), 8000)
    index_folder(root / "audio", out=root / "m.jsonl", progress=False)
    pack(root / "m.jsonl", out=root / "store", sr=16000, progress=False)
    return root / "store"


def _recipe(tmp_path: Path, store: Path, *, method: str = "simclr", steps: int = 8) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(method=method, store=store, steps=steps))
    return path


def _metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_pretrain_writes_checkpoints_logs_and_a_loadable_encoder(tmp_path: Path, store: Path):
    recipe = Recipe.load(_recipe(tmp_path, store))
    checkpoint = pretrain(recipe, out=tmp_path / "run", progress=False)
    assert checkpoint == tmp_path / "run" / "checkpoints" / "step-00000008"
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "encoder.json",
        "encoder.safetensors",
        "method.safetensors",
        "recipe.yaml",
        "state.pt",
    ]
    rows = _metrics(tmp_path / "run")
    assert [int(row["step"]) for row in rows] == [2, 4, 6, 8]
    assert all(float(row["views_per_second"]) > 0 for row in rows)
    assert all(0 <= float(row["data_wait"]) <= 1 for row in rows)
    assert any((tmp_path / "run" / "tensorboard").iterdir())
    model = load(tmp_path / "run")
    weights = load_file(checkpoint / "encoder.safetensors")
    for name, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, weights[name])
    with pytest.raises(Exception, match="already holds a run"):
        pretrain(recipe, out=tmp_path / "run", progress=False)


def test_compile_compiles_the_networks_in_place_and_keeps_their_weight_names(
    tmp_path: Path, store: Path, monkeypatch
):
    compiled = []
    original = torch.nn.Module.compile

    def compile_eagerly(self, *args, **kwargs):  # dynamo tracing without a C++/Triton build
        compiled.append(type(self).__name__)
        return original(self, *args, **{**kwargs, "backend": "eager"})

    monkeypatch.setattr(torch.nn.Module, "compile", compile_eagerly)
    recipe = _recipe(tmp_path, store, method="byol", steps=2)
    plain = pretrain(Recipe.load(recipe), out=tmp_path / "plain", progress=False)
    assert compiled == []
    fast = pretrain(
        Recipe.load(recipe, ["train.compile=true"]), out=tmp_path / "fast", progress=False
    )
    # Every network of the method, the EMA target's too; the loss is a function, left eager.
    assert compiled == ["SampleCNN", "Sequential", "Sequential", "SampleCNN", "Sequential"]
    for name in ("encoder.safetensors", "method.safetensors"):
        assert sorted(load_file(fast / name)) == sorted(load_file(plain / name))
    # The same seed, the same computation: compiling changes nothing the run learns.
    losses = [[float(row["loss"]) for row in _metrics(tmp_path / run)] for run in ("plain", "fast")]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)


def test_killed_run_resumes_to_the_same_result(tmp_path: Path, store: Path):
    recipe_path = _recipe(tmp_path, store, method="byol", steps=12)
    pretrain(Recipe.load(recipe_path), out=tmp_path / "whole", progress=False)
    # SIGKILL right after the step-8 checkpoint is written, as a crash would: no cleanup runs.
    run = tmp_path / "killed"
    script = f"""
import os, signal
import musicssl.checkpoint as checkpoint
save = checkpoint.write_checkpoint
def save_then_die(*args, step, **kwargs):
    save(*args, step=step, **kwargs)
    if step == 8:
        os.kill(os.getpid(), signal.SIGKILL)
checkpoint.write_checkpoint = save_then_die
from musicssl.cli import main
main(["pretrain", {str(recipe_path)!r}, "--out", {str(run)!r}])
"""
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert latest_checkpoint(run).name == "step-00000008"
    result = subprocess.run(
        [sys.executable, "-m", "musicssl", "pretrain", "--resume", str(run)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert latest_checkpoint(run).name == "step-00000012"
    whole = load_file(latest_checkpoint(tmp_path / "whole") / "method.safetensors")
    resumed = load_file(latest_checkpoint(run) / "method.safetensors")
    for name, value in whole.items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-4, atol=1e-5)
    steps = [row["step"] for row in _metrics(run)]
    assert (
        steps
        == [row["step"] for row in _metrics(tmp_path / "whole")]
        == ["2", "4", "6", "8", "10", "12"]
    )
    assert float(_metrics(run)[-1]["loss"]) == pytest.approx(
        float(_metrics(tmp_path / "whole")[-1]["loss"]), rel=1e-4
    )


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, store: Path, monkeypatch
):
    from musicssl.methods.simclr import SimCLR

    original = SimCLR.forward
    calls = {"count": 0}

    def poisoned(self, x_a, x_b):
        calls["count"] += 1
        outputs = original(self, x_a, x_b)
        if calls["count"] > 5:
            outputs["loss"] = outputs["loss"] * float("nan")
        return outputs

    monkeypatch.setattr(SimCLR, "forward", poisoned)
    recipe = Recipe.load(_recipe(tmp_path, store))
    with pytest.raises(TrainingDiverged, match="step 6") as diverged:
        pretrain(recipe, out=tmp_path / "run", progress=False)
    assert "the last good checkpoint is kept in" in str(diverged.value)
    assert "check the method's options" in str(diverged.value)  # 32-true already
    calls["count"] = 5  # from the first step on: nothing to keep
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet"):
        pretrain(recipe, out=tmp_path / "early", progress=False)
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint.name == "step-00000004"
    weights = load_file(checkpoint / "method.safetensors")
    assert all(torch.isfinite(value).all() for value in weights.values())


def test_two_cpu_processes_train_with_ddp_on_gloo(tmp_path: Path, store: Path):
    recipe_path = _recipe(tmp_path, store, steps=4)
    run = tmp_path / "ddp"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "musicssl",
            "pretrain",
            str(recipe_path),
            "--out",
            str(run),
            "train.devices=2",
            "train.accelerator=cpu",
            "train.strategy=ddp",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert latest_checkpoint(run).name == "step-00000004"
    # With negatives gathered from both processes, each anchor faces 2 * 8 * 2 - 2 = 30
    # negatives: near initialisation the loss sits close to log(31), not log(15).
    first_loss = float(_metrics(run)[0]["loss"])
    assert abs(first_loss - np.log(31)) < abs(first_loss - np.log(15))
    weights = load_file(latest_checkpoint(run) / "method.safetensors")
    assert all(torch.isfinite(value).all() for value in weights.values())


def test_torchrun_without_train_devices_trains_one_run_on_its_processes(
    tmp_path: Path, store: Path
):
    """torchrun's processes are one run of as many processes (train.devices auto), spoken
    for by the first; a train.devices that disagrees is one line, said once."""
    recipe_path = _recipe(tmp_path, store, steps=4)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--master-port", "29531", "-m", "musicssl", "pretrain"]  # fmt: skip
    torchrun.append(str(recipe_path))
    result = subprocess.run(
        [*torchrun, "--out", str(tmp_path / "tr"), "train.accelerator=cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "tr"
    assert result.stdout.count("checkpoint: ") == 1
    assert len(list((run / "tensorboard").rglob("events.*"))) == 1
    # Negatives from both processes: near initialisation the loss is about log(31).
    first_loss = float(_metrics(run)[0]["loss"])
    assert abs(first_loss - np.log(31)) < abs(first_loss - np.log(15))
    refused = subprocess.run(
        [*torchrun, "--out", str(tmp_path / "tr4"), "train.accelerator=cpu", "train.devices=4"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    said = [line for line in refused.stderr.splitlines() if line.startswith("musicssl: ")]
    assert said == [
        "musicssl: error: train.devices=4: torchrun started 2 processes on each node (2 in "
        "all); leave train.devices out, or start 4 a node (a run resumes on as many as it "
        "began with)"
    ], refused.stderr[-2000:]
    assert not (tmp_path / "tr4").exists()  # (torchrun adds a traceback of its own)


def test_a_run_resumes_only_on_as_many_processes_as_it_began_with(tmp_path: Path, store: Path):
    recipe = Recipe.load(_recipe(tmp_path, store, steps=4))
    checkpoint = pretrain(recipe, out=tmp_path / "run", progress=False)
    state = torch.load(checkpoint / "state.pt", weights_only=True)
    assert state["processes"] == 1
    # As if it had trained on two processes, with steps left.
    state.update(processes=2, horizon=8)
    torch.save(state, checkpoint / "state.pt")
    longer = Recipe.load(_recipe(tmp_path, store, steps=8))
    with pytest.raises(MusicSSLError, match=r"it trained on 2 processes, and this launch "
                       r"started 1; resume it on 2$"):  # fmt: skip
        pretrain(longer, out=tmp_path / "run", resume=True, progress=False)


def test_what_a_method_returns_is_checked_in_one_line_naming_the_method():
    from musicssl.train import check_outputs

    weight = torch.ones(2, requires_grad=True)
    loss = (weight * 2).sum()
    check_outputs({"loss": loss, "spread": torch.tensor(0.5), "ratio": 0.25}, "mine")
    for outputs, said in (
        (loss, "must return a dict with the 'loss' to train on (got Tensor)"),
        ({"los": loss}, "must return a dict with the 'loss' to train on (got a dict of ['los'])"),
        ({"loss": weight * 2}, "'loss' must be a tensor of one value (got shape (2,))"),
        ({"loss": 1.0}, "'loss' must be a tensor of one value (got float)"),
        ({"loss": loss.detach()}, "'loss' is reached by no gradient"),
        ({"loss": loss, "step": torch.tensor(7.0)}, "returns 'step', a column metrics.csv keeps"),
        ({"loss": loss, "probe_knn": 0.5}, "returns 'probe_knn', a column metrics.csv keeps"),
        ({"loss": loss, "name": "x"}, "returns 'name' as str: a value logged beside the loss"),
    ):
        with pytest.raises(MusicSSLError, match=re.escape("method 'mine': forward") + ".*"
                           + re.escape(said)):  # fmt: skip
            check_outputs(outputs, "mine")


def test_a_time_budget_ends_the_run_early(tmp_path: Path, store: Path, capsys):
    # 20 steps are timed, then the run stops where the budget says, far before 100000.
    recipe = Recipe.load(_recipe(tmp_path, store, steps=100000), ["train.minutes=0.02"])
    checkpoint = pretrain(recipe, out=tmp_path / "run", progress=False)
    state = torch.load(checkpoint / "state.pt", weights_only=True)
    assert 20 <= state["step"] < 100000
    assert state["horizon"] == state["step"]
    # Said without a progress bar too: a caller learns why it stopped before train.steps.
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"pretrain: train.minutes=0.02 ended the run at step {state['step']} of train.steps=100000"
    )
    # Resuming a finished budgeted run does nothing more.
    assert pretrain(recipe, out=tmp_path / "run", resume=True, progress=False) == checkpoint


def test_the_budget_is_refitted_from_the_speed_since_the_last_fit():
    # A 10-minute budget; steps take 1 s for the first 80 (a slow start), then 0.5 s.
    assert FIT_STEPS == (20, 80, 320)
    budget = TimeBudget(10.0, max_steps=5000, start_step=0)
    clock = {20: 20.0, 80: 80.0, 320: 200.0}
    fits = {}
    for step in range(1, 400):
        fitted = budget.update(step, budget.began + clock.get(step, 0.0))
        if fitted is not None:
            fits[step] = fitted
    # 20: 580 s left at 1 s/step, 90% of it: 522 more. 80: 520 s at 1 s/step, 97%: 504 more.
    # 320: 400 s left at (200 - 80) / 240 = 0.5 s/step, 98%: 784 more.
    assert fits == {20: 542, 80: 584, 320: 1104}
    assert budget.settled
    # A resumed run counts its fits from where it resumed; one that ends before the next
    # fit is settled at once.
    resumed = TimeBudget(0.5, max_steps=5000, start_step=100)
    assert resumed.update(20, resumed.began) is None
    last = resumed.update(120, resumed.began + 20.0)
    assert last == 100 + 20 + int(0.9 * 10.0 / 1.0) and resumed.settled
    assert resumed.update(180, resumed.began + 30.0) is None


def test_the_budget_sets_the_last_step_and_the_schedule_follows_it():
    fit = functools.partial(last_step_within, step=20, max_steps=10000, seconds_per_step=0.1)
    # 58 s left, 90% of it at 0.1 s/step is 522 more steps; 97% of it, 562.
    assert fit(58.0, margin=0.1) == 542
    assert fit(58.0, margin=0.03) == 582
    assert fit(-30.0, margin=0.1) == 20  # already over budget
    # Clock arithmetic leaves 0.98 * 400 s / 0.5 s a hair under 784: it still counts as 784.
    assert fit(400.0 - 1e-12, margin=0.02, seconds_per_step=0.5) == 20 + 784
    assert last_step_within(58.0, step=20, max_steps=100, seconds_per_step=0.1, margin=0.1) == 100
    optim = OptimSettings(lr=1e-3, warmup_steps=0, min_lr_ratio=0.0)
    assert learning_rate_factor(542, last_step=542, optim=optim) == pytest.approx(0.0)
    assert learning_rate_factor(271, last_step=542, optim=optim) == pytest.approx(0.5)
    assert learning_rate_factor(0, last_step=542, optim=optim) == pytest.approx(1.0)
    warm = OptimSettings(lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate_factor(4, last_step=110, optim=warm) == pytest.approx(0.5)
    assert learning_rate_factor(60, last_step=110, optim=warm) == pytest.approx(0.55)


def test_only_training_clips_reach_the_loader(tmp_path: Path, store: Path, monkeypatch):
    import json

    from musicssl import train_data

    rows = [json.loads(line) for line in (store.parent / "m.jsonl").read_text().splitlines()]
    splits = ["train", "valid", "test", "train"] * 5
    with open(tmp_path / "m.jsonl", "w") as handle:
        for row, split in zip(rows, splits):
            row["path"] = str(store.parent / row["path"])
            handle.write(json.dumps({**row, "split": split}) + "\n")
    pack(tmp_path / "m.jsonl", out=tmp_path / "store", sr=16000, progress=False)
    seen: set[int] = set()

    class Spy(train_data.TwoCrops):
        def __getitem__(self, key):
            item = super().__getitem__(key)
            seen.add(int(item["index"]))
            return item

    monkeypatch.setattr(train_data, "TwoCrops", Spy)
    path = _recipe(tmp_path, tmp_path / "store", steps=4)
    recipe = Recipe.load(path, ["data.splits=train"])
    pretrain(recipe, out=tmp_path / "run", progress=False)
    packed = [json.loads(line) for line in (tmp_path / "store" / "clips.jsonl").open()]
    assert len(seen) > 5 and {packed[i]["split"] for i in seen} == {"train"}

    # Unsplit audio is refused unless every clip is asked for, before a run folder is made.
    unsplit = Recipe.load(_recipe(tmp_path, store, steps=2), ["data.splits=train"])
    with pytest.raises(Exception, match="no clip has a .split."):
        pretrain(unsplit, out=tmp_path / "unsplit", progress=False)
    assert not (tmp_path / "unsplit").exists()


# Steps at which the regression method's after_optimizer_step ran (reset by each test).
HOOK_STEPS: list[int] = []


class _Regression(Method):
    """A method without negatives: the mean over clips of a per-clip squared error.

    The encoder's batch norm stays in inference mode, so that no clip's term depends on the
    other clips of its batch: the loss of a batch is then the mean of its micro-batches'.
    """

    num_views = 1

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        self.head = nn.Linear(encoder.embedding_dim, 1)

    def train(self, mode: bool = True) -> "_Regression":
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        target = x.pow(2).mean(dim=-1, keepdim=True) * 10
        return {"loss": torch.nn.functional.mse_loss(self.head(self.encoder(x)), target)}

    def after_optimizer_step(self, step: int, total_steps: int) -> dict[str, float]:
        HOOK_STEPS.append(step)
        return {}


def _regression(encoder: nn.Module) -> _Regression:
    return _Regression(encoder)


def _regression_run(tmp_path: Path, store: Path, name: str, overrides: list[str]) -> Path:
    """A run of the regression method with no augmentation (crops depend on the seed only)."""
    text = RECIPE.format(method="regression", store=store, steps=1)
    path = tmp_path / "regression.yaml"
    path.write_text(text.replace("options: {hidden_dim: 32, projection_dim: 16}", "options: {}")
                    .replace("augment: {name: clmr, options: {pitch_kind: tape}}",
                             "augment: {name: none}"))  # fmt: skip
    pretrain(Recipe.load(path, overrides), out=tmp_path / name, progress=False)
    return tmp_path / name


def test_two_accumulated_micro_batches_step_as_one_batch_twice_their_size(
    tmp_path: Path, store: Path, monkeypatch
):
    monkeypatch.setitem(METHODS, "regression", _regression)
    one = ["train.steps=1", "train.batch_size=8"]
    two = ["train.steps=1", "train.batch_size=4", "train.accumulate=2"]
    runs = [_regression_run(tmp_path, store, name, o) for name, o in (("one", one), ("two", two))]
    weights = [load_file(latest_checkpoint(run) / "method.safetensors") for run in runs]
    torch.manual_seed(1)  # the runs' initial weights
    initial = build_parts(Recipe.load(runs[0] / "recipe.yaml")).method.state_dict()
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=0, atol=1e-6)
    assert not torch.allclose(weights[0]["head.weight"], initial["head.weight"])
    # Adam's first step hardly depends on the gradient's scale: its first moment does.
    moments = []
    for run in runs:
        method = build_parts(Recipe.load(run / "recipe.yaml")).method
        state = load_training_state(run, method)["optimizer"]["state"]
        moments.append([state[key]["exp_avg"] for key in sorted(state)])
    assert len(moments[0]) == len(list(initial)) - sum("running" in k or "num_batches" in k
                                                        for k in initial)  # fmt: skip
    for ours, theirs in zip(*moments):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-9)


def test_accumulation_counts_steps_schedule_and_hooks_once_per_optimiser_step(
    tmp_path: Path, store: Path, monkeypatch
):
    monkeypatch.setitem(METHODS, "regression", _regression)
    HOOK_STEPS.clear()
    run = _regression_run(
        tmp_path, store, "run",
        ["train.steps=4", "train.batch_size=2", "train.accumulate=3", "optim.warmup_steps=4"],
    )  # fmt: skip
    assert HOOK_STEPS == [1, 2, 3, 4]
    rows = _metrics(run)
    assert [int(row["step"]) for row in rows] == [2, 4]
    # The warm-up reaches the full rate at its fourth step, not its fourth micro-batch.
    assert [float(row["lr"]) for row in rows] == pytest.approx([1e-3 * 2 / 4, 1e-3])
    assert latest_checkpoint(run).name == "step-00000004"


def test_a_step_of_micro_batches_takes_the_items_of_one_batch_of_their_total():
    def batches(**options) -> list[list[tuple[int, int]]]:
        return list(StepBatches(50, seed=3, start_step=1, total_steps=3, **options))

    single = batches(batch_size=12)
    micro = batches(batch_size=4, accumulate=3)
    assert len(micro) == 3 * len(single) == 6
    assert [sum(micro[3 * i : 3 * i + 3], []) for i in range(2)] == single
    ranks = [batches(batch_size=2, accumulate=3, rank=r, world_size=2) for r in (0, 1)]
    assert [sum((ranks[0][k] + ranks[1][k] for k in range(3 * i, 3 * i + 3)), []) for i in
            range(2)] == single  # fmt: skip
    with pytest.raises(MusicSSLError, match="train.accumulate"):
        StepBatches(50, seed=0, start_step=0, total_steps=1, batch_size=20, accumulate=3)


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "many"])
def test_a_bad_accumulate_is_one_line_naming_it(tmp_path: Path, store: Path, value: str):
    with pytest.raises(MusicSSLError, match="train.accumulate") as error:
        Recipe.load(_recipe(tmp_path, store), [f"train.accumulate={value}"])
    assert "\n" not in str(error.value)


def test_draw_seeds_stay_in_a_generators_range_for_every_train_seed():
    assert _draw_seed(3, 7, 1, 2) == (3 * 1_000_003 + 7) * 4099 + 1 + 65_537 * 2  # small: as is
    largest = _draw_seed(2**63 - 1, 10**9, 7, 3)
    assert 0 <= largest < 2**63
    torch.Generator().manual_seed(largest)


def test_the_progress_line_shows_the_loss_of_the_step_it_counts(
    tmp_path: Path, store: Path, capsys, monkeypatch
):
    import musicssl.progress

    monkeypatch.setattr(musicssl.progress, "MIN_SECONDS", 0.0)  # a line at every tenth
    recipe = Recipe.load(_recipe(tmp_path, store, method="byol", steps=3), ["train.log_every=1"])
    pretrain(recipe, out=tmp_path / "run", progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if "3/3 step" in line]
    last = _metrics(tmp_path / "run")[-1]
    assert last["step"] == "3" and lines
    assert f"loss={float(last['loss']):.4f}," in lines[-1]


def test_a_method_that_learns_from_captions_is_refused_a_store_without_them(capsys):
    from types import SimpleNamespace

    from musicssl.train_data import check_captions

    rows = [
        {"path": "a.wav"},
        {"path": "b.wav", "caption": "  "},
        {"path": "c.wav", "caption": "organ"},
    ]
    store = SimpleNamespace(path=Path("store"), rows=rows)
    with pytest.raises(MusicSSLError) as caught:
        check_captions(store, [0, 1], uses_text=True)
    assert str(caught.value).startswith("store: none of its 2 training clips has a 'caption'")
    check_captions(store, [0, 1], uses_text=False)  # a method without text reads none
    check_captions(store, [0, 1, 2], uses_text=True)
    assert "note: 2 of 3 training clips have no caption" in capsys.readouterr().out


class _Clock:
    """A stand-in for ``time.perf_counter`` that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_loop_counts_the_time_it_waits_for_data_and_says_when_it_holds_the_run_back(
    tmp_path: Path, monkeypatch, capsys
):
    clock = _Clock()
    monkeypatch.setattr("musicssl.train_data.time.perf_counter", clock)
    monkeypatch.setattr("musicssl.runlog.time.perf_counter", clock)

    def slow_loader():  # each batch takes 0.5 s to arrive; five batches, steps of two
        for index in range(5):
            clock.now += 0.5
            yield {"index": torch.tensor(index)}

    waits: list[float] = []
    groups = list(step_groups(slow_loader(), 2, waited=waits.append))
    assert [[int(b["index"]) for b in group] for group in groups] == [[0, 1], [2, 3]]
    assert waits == pytest.approx([1.0, 1.0])  # the lone fifth batch makes no step
    log = RunLog(tmp_path, start_step=0, enabled=True)
    for step, wait in enumerate([1.0, 0.2, 3.0], start=1):
        log.waited(wait)
        clock.now += 4.0  # the wait and the step: the window lasts 4 s in all
        log.add({"loss": torch.tensor(1.0)}, views=8)
        log.write(step, {}, lr=0.1, run=tmp_path)
    log.close()
    rows = _metrics(tmp_path)
    assert [float(row["data_wait"]) for row in rows] == pytest.approx([0.25, 0.05, 0.75])
    assert [float(row["views_per_second"]) for row in rows] == pytest.approx([2.0, 2.0, 2.0])
    # The first window (the loader's start) and 5% say nothing; 75% is said once.
    out = capsys.readouterr().out
    assert out.count("note:") == 1 and "waited for data 75% of the time over steps 3-3" in out


def test_a_run_starts_from_another_runs_encoder_and_a_different_encoder_is_refused(
    tmp_path: Path, store: Path
):
    first = Recipe.load(_recipe(tmp_path, store, steps=4))
    pretrain(first, out=tmp_path / "first", progress=False)
    trained = load_file(latest_checkpoint(tmp_path / "first") / "encoder.safetensors")

    (tmp_path / "byol").mkdir()
    second = Recipe.load(
        _recipe(tmp_path / "byol", store, method="byol", steps=4),
        [f"train.init_from={tmp_path / 'first'}", "train.seed=5"],
    )
    parts = build_parts(second)
    for name, value in parts.encoder.state_dict().items():
        torch.testing.assert_close(value, trained[name])
    for name, value in parts.method.target_encoder.state_dict().items():  # BYOL's target too
        torch.testing.assert_close(value, trained[name])
    fresh = build_parts(second, start=False).encoder.state_dict()
    assert any(not torch.equal(fresh[name], trained[name]) for name in trained)

    pretrain(second, out=tmp_path / "second", progress=False)
    assert (tmp_path / "second" / "recipe.yaml").read_text().count("init_from:") == 1
    # A finished or killed run resumes from its own checkpoint, without the run it started from.
    (tmp_path / "first").rename(tmp_path / "moved")
    pretrain(second, out=tmp_path / "second", resume=True, progress=False)

    wider = Recipe.load(
        _recipe(tmp_path, store, steps=4),
        [f"train.init_from={tmp_path / 'moved'}", "encoder.options.channels=[8,8,16,16,16,64]"],
    )
    with pytest.raises(MusicSSLError, match=r"^train.init_from: .*moved: its encoder is built "
                       r"otherwise \(channels=\[8, 8, 16, 16, 16, 32\] there, \[8, 8, 16, 16, "
                       r"16, 64\] here\)"):  # fmt: skip
        build_parts(wider)
    missing = Recipe.load(_recipe(tmp_path, store), [f"train.init_from={tmp_path / 'first'}"])
    with pytest.raises(MusicSSLError, match="^train.init_from: .*first: no such run"):
        build_parts(missing)


def test_the_optimiser_is_adamw_fused_on_this_torch_and_steps_as_the_default_one(
    tmp_path: Path, store: Path
):
    torch.manual_seed(1)
    recipe = Recipe.load(_recipe(tmp_path, store), overrides=["optim.weight_decay=0.1"])
    optimizer = build_parts(recipe).optimizer
    assert optimizer.defaults["fused"] is (True if torch.__version__ >= "2.8" else None)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    before = [p.detach().clone() for p in params]
    twins = [p.detach().clone().requires_grad_() for p in params]
    plain = torch.optim.AdamW(twins, lr=1e-3, weight_decay=0.1, foreach=False)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        for param, twin in zip(params, twins):
            param.grad = torch.randn(param.shape, generator=generator)
            twin.grad = param.grad.clone()
        optimizer.step()
        plain.step()
    for param, twin, start in zip(params, twins, before):
        torch.testing.assert_close(param.detach(), twin.detach(), rtol=1e-5, atol=1e-6)
        assert (param.detach() - start).abs().max() > 1e-4  # three steps of lr 1e-3 moved it


def test_a_run_started_from_python_keeps_its_stores_whole_path(
    tmp_path: Path, store: Path, monkeypatch
):
    monkeypatch.chdir(store.parent)
    recipe = Recipe.load(_recipe(tmp_path, store, steps=2), overrides=[f"data.store={store.name}"])
    assert recipe.data.store == "store"
    pretrain(recipe, out=tmp_path / "run", progress=False)
    assert recipe.data.store == "store"  # the caller's recipe is left as it was
    kept = Recipe.load(tmp_path / "run" / "recipe.yaml")
    assert kept.data.store == str(store.resolve()) and Path(kept.data.corpus).is_absolute()
    monkeypatch.chdir(tmp_path)  # resumed from another folder, it still finds its store
    assert len(training_store(kept)) == 20


def test_one_long_recording_fills_the_batches_of_a_run(tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "audio").mkdir()
    noise = rng.uniform(-0.3, 0.3, 100 * 8000).astype(np.float32)  # 100 s: three 30 s parts
    sf.write(str(tmp_path / "audio" / "long.wav"), noise, 8000)
    index_folder(tmp_path / "audio", out=tmp_path / "m.jsonl", progress=False)
    pack(tmp_path / "m.jsonl", out=tmp_path / "store", sr=16000, progress=False)
    overrides = ["train.batch_size=3", "train.steps=2", "data.splits=all"]
    recipe = Recipe.load(_recipe(tmp_path, tmp_path / "store", steps=2), overrides=overrides)
    pretrain(recipe, out=tmp_path / "run", progress=False)
    assert "1 clips of split all, 3 items an epoch (one per 30 s" in capsys.readouterr().out
    assert [row["step"] for row in _metrics(tmp_path / "run")][-1] == "2"
