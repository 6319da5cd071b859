from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from musicssl.corpus import index_folder
from musicssl.errors import MusicSSLError
from musicssl.monitor import ProbeMonitor, _knn
from musicssl.pack import pack
from musicssl.store import SampleStore


def _store(root: Path, labels: list[str], *, sr: int = 8000) -> SampleStore:
    """A store whose 'valid' clips are low tones (label a) or high tones (label b)."""
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    for i, label in enumerate(labels):
        freq = rng.uniform(100, 200) if label == "a" else rng.uniform(2000, 3000)
        t = np.arange(sr) / sr
        sf.write(str(root / "audio" / f"{i:03d}.wav"), 0.4 * np.sin(2 * np.pi * freq * t), sr)
    index_folder(root / "audio", out=root / "m.jsonl", progress=False)
    pack(root / "m.jsonl", out=root / "store", sr=sr, progress=False)
    store = SampleStore(root / "store")
    for row in store.rows:
        i = int(Path(row["path"]).stem)
        row.update(split="valid", style=labels[i], piece_id=f"p{i // 2}")
    return store


class Spectrum(nn.Module):
    """A fixed 'encoder': log magnitude spectrum in 16 bands. Shape: (batch, 16)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft(x).abs()[..., :2048]
        return self.scale * torch.log1p(spectrum.reshape(x.shape[0], 16, -1).mean(-1))


def test_knn_votes_for_the_nearest_neighbours():
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]])
    targets = np.array([0, 0, 1, 1, 1])
    test = np.array([[1.0, 0.05], [0.05, 1.0]])
    assert _knn(train, targets, test, k=3).tolist() == [0, 1]


def test_probe_separates_what_the_encoder_separates(tmp_path: Path):
    store = _store(tmp_path / "s", ["a", "b"] * 20)
    monitor = ProbeMonitor(store, label="style", num_samples=4096, windows=2)
    encoder = Spectrum()
    encoder.train()
    scores = monitor(encoder)
    # Chance is 0.5; the spectrum separates the two tone ranges almost perfectly.
    assert scores["probe_knn"] >= 0.95
    assert scores["probe_linear"] >= 0.95
    assert encoder.training  # restored


def test_probe_is_near_chance_when_labels_ignore_the_audio(tmp_path: Path):
    rng = np.random.default_rng(1)
    audio_kinds = ["a", "b"] * 40
    store = _store(tmp_path / "s", audio_kinds)
    shuffled = rng.permutation(["a", "b"] * 40)
    for row, label in zip(store.rows, shuffled):
        row["style"] = str(label)
    scores = ProbeMonitor(store, label="style", num_samples=4096)(Spectrum())
    assert 0.25 < scores["probe_knn"] < 0.75
    assert 0.25 < scores["probe_linear"] < 0.75


def test_probe_needs_two_classes(tmp_path: Path):
    store = _store(tmp_path / "s", ["a"] * 6)
    with pytest.raises(MusicSSLError, match="at least two values of 'style'"):
        ProbeMonitor(store, label="style", num_samples=4096)
    # Clips packed without their labels: the message counts the validation clips it read.
    for row in store.rows:
        del row["style"]
    with pytest.raises(MusicSSLError) as caught:
        ProbeMonitor(store, label="style", num_samples=4096)
    assert "'style'; 0 of its 6 validation clips have one (classes [])" in str(caught.value)


def test_probe_leaves_its_scores_empty_when_no_class_spans_two_folds(tmp_path: Path, capsys):
    # Two pieces of two clips each, one piece per class: a fold that holds a piece out
    # leaves its class out of the training folds.
    store = _store(tmp_path / "s", ["a", "a", "b", "b"])
    monitor = ProbeMonitor(store, label="style", num_samples=4096)
    assert (
        "the fast probe scores nothing (no probe_knn or probe_linear in metrics.csv): no "
        "'style' class" in capsys.readouterr().out
    )
    assert monitor(Spectrum()) == {}
