"""README's examples run as written."""

import re
from pathlib import Path

import numpy as np
import soundfile as sf

from musicssl.corpus import index_folder
from musicssl.pack import pack

from conftest import untrained_run

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_quick_start_is_two_commands_that_the_makefile_defines():
    section = README.read_text().split("## Quick start", 1)[1]
    first_block = re.search(r"```\w*\n(.*?)```", section, flags=re.S).group(1)
    commands = [line for line in first_block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (README.parent / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (README.parent / ".ci" / "run").read_text()


def test_python_example_runs(tmp_path: Path, monkeypatch):
    (tmp_path / "audio").mkdir()
    for number in range(3):
        noise = np.random.default_rng(number).uniform(-0.2, 0.2, 16000 * 4)
        sf.write(str(tmp_path / "audio" / f"{number}.wav"), noise.astype(np.float32), 16000)
    index_folder(tmp_path / "audio", out=tmp_path / "m.jsonl", split_by="file", progress=False)
    pack(tmp_path / "m.jsonl", out=tmp_path / "data" / "corpus" / "store-16000", progress=False)
    monkeypatch.chdir(tmp_path)
    example = _blocks("python")[0]
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    store = namespace["store"]
    assert [store.rows[i]["split"] for i in namespace["train"]] == ["train"] * len(
        namespace["train"]
    )  # the example draws from the training split only
    assert namespace["x_a"].shape == (48000,)
    assert namespace["x_a"].abs().max() <= 1.0


def test_read_out_example_runs(tmp_path: Path, monkeypatch):
    import torch

    from musicssl.encoders import KeyCNN, PestoCNN, TempoCNN
    from musicssl.readouts import cadence

    torch.manual_seed(0)
    untrained_run(tmp_path / "runs" / "pesto", PestoCNN(), "pesto_cnn")
    untrained_run(tmp_path / "runs" / "key", KeyCNN(channels=4, depth=2), "key_cnn")
    untrained_run(tmp_path / "runs" / "tempo", TempoCNN(), "tempo_cnn")
    monkeypatch.chdir(tmp_path)
    (example,) = [block for block in _blocks("python") if "load_key" in block]
    namespace: dict = {"waveform": cadence(0, "major", sr=22050), "sr": 22050}
    exec(compile(example, "README.md", "exec"), namespace)
    assert len(namespace["track"].f0) == len(namespace["track"].times) > 0
    assert namespace["key"].split()[1] in ("major", "minor")
    assert 20.0 < namespace["bpm"] < 400.0


def test_every_recipe_setting_is_in_the_readme_table():
    import dataclasses

    from musicssl.recipe import DataSettings, OptimSettings, TrainSettings

    rows = {
        line.split("|")[1].strip(" `"): line
        for line in README.read_text().splitlines()
        if line.startswith("| `") and line.split("|")[1].strip(" `") in ("data", "optim", "train")
    }
    for section, kind in (
        ("data", DataSettings),
        ("optim", OptimSettings),
        ("train", TrainSettings),
    ):
        named = set(re.findall(r"`(\w+)` \(", rows[section]))
        assert named == {field.name for field in dataclasses.fields(kind)}, section
