"""Encoders and methods of other installed packages: found by entry point, from a recipe on
the command line, and rebuilt from a checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicssl import plugins
from musicssl.corpus import index_folder
from musicssl.encoders import ENCODERS, build_encoder
from musicssl.errors import MusicSSLError
from musicssl.methods import METHODS, build_method
from musicssl.pack import pack

# An installed package of its own: a SimSiam method and a small encoder.
PACKAGE = '''
import torch
from torch import nn
from torch.nn import functional as F

from musicssl.encoders.base import Encoder
from musicssl.methods.base import Method


class Frames(Encoder):
    """Frames of 64 samples, one linear layer: enough to train and to load back."""

    def __init__(self, width: int = 8, sample_rate: int = 16000) -> None:
        super().__init__()
        self.width, self.sample_rate = width, sample_rate
        self.embedding_dim, self.num_layers, self.input_samples = width, 1, 4096
        self.layer = nn.Linear(64, width)

    def forward_layers(self, x):
        frames = x[:, : x.shape[1] // 64 * 64].reshape(x.shape[0], -1, 64)
        return [self.layer(frames).transpose(1, 2)]

    def forward_features(self, x, *, layer=None):
        return self.forward_layers(x)[0]

    def forward(self, x):
        return self.pool(self.forward_features(x))

    def frame_hop(self, layer=None):
        return 64

    def config(self):
        return {"width": self.width, "sample_rate": self.sample_rate}


class SimSiam(Method):
    def __init__(self, encoder, dim):
        super().__init__()
        self.encoder = encoder
        self.predictor = nn.Linear(encoder.embedding_dim, encoder.embedding_dim)

    def forward(self, x_a, x_b):
        z_a, z_b = self.encoder(x_a), self.encoder(x_b)
        p_a, p_b = self.predictor(z_a), self.predictor(z_b)
        agree = F.cosine_similarity(p_a, z_b.detach()) + F.cosine_similarity(p_b, z_a.detach())
        return {"loss": -agree.mean() / 2}


def simsiam(encoder, *, dim: int = 16, name: str = "simsiam"):
    return SimSiam(encoder, dim)


def broken(encoder):
    raise RuntimeError("never built")


class Careless(Method):
    """Its forward fails in its own code, as a method of one's own may."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x_a, x_b):
        return {"loss": self.encoder(x_a).sum() * torch.ones(3, 4) @ torch.ones(5)}


def careless(encoder):
    return Careless(encoder)


class NoConfig(Frames):
    config = Encoder.config
'''

ENTRY_POINTS = """
[musicssl.methods]
simsiam = mine_ssl:simsiam
gone = mine_ssl_missing:simsiam
careless = mine_ssl:careless
simclr = mine_ssl:simsiam

[musicssl.encoders]
frames = mine_ssl:Frames
not_an_encoder = mine_ssl:simsiam
no_config = mine_ssl:NoConfig
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch) -> Path:
    """A folder on sys.path holding the package and its distribution's metadata."""
    site = tmp_path / "site"
    (site / "mine_ssl-0.1.dist-info").mkdir(parents=True)
    (site / "mine_ssl.py").write_text(textwrap.dedent(PACKAGE))
    info = site / "mine_ssl-0.1.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mine-ssl\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    before = [(registry, dict(registry)) for registry in (METHODS, ENCODERS)]
    yield site
    for registry, entries in before:  # every name a test loaded, gone again
        registry.clear()
        registry.update(entries)
    sys.modules.pop("mine_ssl", None)
    plugins.NOTED.clear()
    plugins.LOADED.discard("mine_ssl")


def test_an_installed_packages_method_and_encoder_are_found_by_name(installed: Path):
    encoder = build_encoder("frames", width=4)
    assert type(encoder).__name__ == "Frames" and encoder.embedding_dim == 4
    method = build_method("simsiam", encoder, dim=8, name="an option of that name too")
    x = np.random.default_rng(0).normal(size=(3, 4096)).astype(np.float32)
    import torch

    loss = method(torch.from_numpy(x), torch.from_numpy(x))["loss"]
    assert -1.0 <= float(loss.detach()) <= 1.0  # minus a mean cosine similarity
    unknown = r"method.name: unknown method 'simsam' \(nor an installed package's\); choose one"
    with pytest.raises(
        MusicSSLError, match=unknown + r".*, simsiam, .*; did you mean 'simsiam'\?$"
    ):
        build_method("simsam", encoder)
    with pytest.raises(MusicSSLError, match=r"method.options.dim must be a whole number"):
        build_method("simsiam", encoder, dim="many")
    gone = r"^method 'gone': its package's entry point mine_ssl_missing:simsiam does not load"
    with pytest.raises(MusicSSLError, match=gone + r" \(ModuleNotFoundError: "):
        build_method("gone", encoder)
    with pytest.raises(MusicSSLError, match=r"^encoder 'not_an_encoder': mine_ssl:simsiam is "
                       "not an Encoder subclass"):  # fmt: skip
        build_encoder("not_an_encoder")
    # What training or a checkpoint would miss later is missed as the encoder is built.
    with pytest.raises(MusicSSLError, match=r"^encoder 'no_config' lacks config \(what every "):
        build_encoder("no_config")


def test_a_package_naming_a_builtin_is_noted_once_and_the_builtin_kept(installed: Path, capsys):
    from musicssl.methods.simclr import SimCLR

    encoder = build_encoder("frames")
    for _ in range(2):
        assert type(build_method("simclr", encoder)) is SimCLR
    said = capsys.readouterr().err
    assert said.count("note: mine_ssl:simsiam names a method 'simclr', as musicssl's own is "
                      "named: musicssl's is used") == 1  # fmt: skip


def test_a_recipe_naming_them_trains_from_the_command_line_and_its_checkpoint_loads(
    installed: Path, tmp_path: Path
):
    rng = np.random.default_rng(0)
    (tmp_path / "audio").mkdir()
    for number in range(12):
        clip = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * np.arange(8000) / 16000)
        sf.write(str(tmp_path / "audio" / f"{number}.wav"), clip.astype(np.float32), 16000)
    index_folder(tmp_path / "audio", out=tmp_path / "m.jsonl", progress=False)
    pack(tmp_path / "m.jsonl", out=tmp_path / "store", progress=False)
    recipe = tmp_path / "simsiam.yaml"
    recipe.write_text(
        "encoder: {name: frames, options: {width: 8}}\n"
        "method: {name: simsiam, options: {dim: 8}}\n"
        "augment: {name: none}\n"
        f"data: {{store: {tmp_path / 'store'}, workers: 0, splits: all}}\n"
        "train: {steps: 4, batch_size: 4, checkpoint_every: 2, log_every: 1}\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "musicssl", "pretrain", str(recipe), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    step = tmp_path / "run" / "checkpoints" / "step-00000004"
    spec = json.loads((step / "encoder.json").read_text())
    assert spec["name"] == "frames" and spec["package"] == "mine-ssl"

    # A method whose own code fails: its package is named, not musicssl.
    careless = tmp_path / "careless.yaml"
    careless.write_text(recipe.read_text().replace("name: simsiam, options: {dim: 8}",
                                                   "name: careless"))  # fmt: skip
    failed = subprocess.run(
        [sys.executable, "-m", "musicssl", "pretrain", str(careless), "--out", str(tmp_path / "c")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("musicssl: error: the error is in the code of package mine_ssl (")
    assert "in forward): RuntimeError: " in last and "bug in musicssl" not in failed.stderr
    assert not (tmp_path / "c").exists()

    import musicssl

    model = musicssl.load(tmp_path / "run")
    assert type(model.encoder).__name__ == "Frames"
    assert model.embed(np.ones(16000, np.float32), 16000).clip.shape == (8,)
    # Where the package is gone, the checkpoint says which one to install.
    (step / "encoder.json").write_text(json.dumps({**spec, "name": "frames_of_old"}))
    gone = r"encoder.json: the encoder 'frames_of_old' comes from the package mine-ssl, which "
    with pytest.raises(MusicSSLError, match=gone + r"is not installed here; install it$"):
        musicssl.load(step)
