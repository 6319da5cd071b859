"""The Audio Spectrogram Transformer (AST) from a Hugging Face folder, probed like a run.

AST reads a Kaldi-style log-mel filter bank (25 ms frames every 10 ms at 16 kHz,
``max_length`` of them: 10.24 s in the published models), normalised with the dataset's mean
and std, cuts it into overlapping patches (``patch_size`` square, ``frequency_stride`` and
``time_stride`` apart), and runs transformer blocks over the patches and two class tokens.
Every hidden state is a layer (the patch embedding first, the last as the model outputs it,
after its final norm). Its patch tokens are laid out frequency-major; each layer's frames are
its tokens of one time position averaged over frequency, so each layer is a frame track of
``time_stride`` frames (100 ms) a step.

The clip embedding is the mean of the last layer's frames: the mean of its patch tokens. It is
not the model's pooled output (the mean of its two class tokens, trained to tag AudioSet): the
clip embedding of every encoder here pools its frames, so that a layer's frames and its clip
vector say the same thing.

A window is one input (``max_length`` frames); a shorter clip is read as the feature extractor
reads it, its filter bank padded with zeros, and only frames within the clip are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from musicssl.errors import MusicSSLError
from musicssl.huggingface import AST, PREFIX, HuggingFaceModel, need_transformers

RATE = 16000
# The filter bank's frames: 25 ms every 10 ms at 16 kHz, not centred (Kaldi's snip_edges).
FRAME, HOP = 400, 160


class HuggingFaceAST(HuggingFaceModel):
    """A ``transformers`` ``ASTModel`` as an encoder.

    Args:
        model: the ``ASTModel``.
        extractor: its ``ASTFeatureExtractor``.
        path: the folder it came from.
        weights: what identifies the weights (see ``load_huggingface``).
    """

    def __init__(self, model: Any, extractor: Any, *, path: str, weights: str) -> None:
        super().__init__()
        self.model = model
        self.extractor = extractor
        self.path = path
        self.weights = weights
        self.kind = AST
        config = model.config
        self.sample_rate = RATE
        self.max_length = int(config.max_length)
        self.input_samples = (self.max_length - 1) * HOP + FRAME
        self.shortest_input = FRAME  # a shorter clip's filter bank is padded, as AST's is
        self.embedding_dim = int(config.hidden_size)
        self.num_layers = int(config.num_hidden_layers) + 1
        self.patch = int(config.patch_size)
        self.time_stride = int(config.time_stride)
        self._rows = (int(config.num_mel_bins) - self.patch) // int(config.frequency_stride) + 1
        self._columns = (self.max_length - self.patch) // self.time_stride + 1

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        """Every hidden state as frames. Shape: (B, num_samples) -> (B, hidden, frames) each."""
        self.check_window(x, "input")
        signals = list(x.detach().float().cpu().numpy())
        found = self.extractor(signals, sampling_rate=RATE, return_tensors="np")
        values = torch.from_numpy(np.asarray(found["input_values"], np.float32)).to(x.device)
        output = self.model(input_values=values, output_hidden_states=True)
        states = [*output.hidden_states[:-1], output.last_hidden_state]
        return [self._frames(state) for state in states]

    def _frames(self, tokens: Tensor) -> Tensor:
        """Patch tokens (after the two class tokens), frequency-major, averaged over
        frequency. Shape: (B, 2 + rows * columns, C) -> (B, C, columns)."""
        patches = tokens[:, 2:].reshape(tokens.shape[0], self._rows, self._columns, -1)
        return patches.mean(dim=1).transpose(1, 2)

    def frame_hop(self, layer: int | None = None) -> int:
        """Input samples between frames: ``time_stride`` filter-bank frames."""
        return self.time_stride * HOP

    def frame_centres(
        self, num_frames: int, *, window: int, layer: int | None = None
    ) -> np.ndarray:
        """The centre of the filter-bank frames each time position reads: position ``i``
        reads frames ``[i s, i s + p)`` (``s = time_stride``, ``p = patch_size``), frame
        ``j`` reading samples ``[160 j, 160 j + 400)``; the padding past a short clip is
        timed alike, and its frames dropped."""
        frame = np.arange(num_frames) * self.time_stride + (self.patch - 1) / 2
        return frame * HOP + (FRAME - 1) / 2

    def describe(self) -> str:
        """What the report says of the model: its kind, size, input and weights."""
        seconds = self.input_samples / RATE
        return (
            f"ast from {Path(self.path).resolve()}: {self.num_layers} layers of "
            f"{self.embedding_dim}, {RATE} Hz in {seconds:g} s inputs, frames "
            f"{self.time_stride * HOP / RATE * 1000:g} ms apart, the clip the mean of its "
            f"patch tokens; weights sha256 {self.weights[:16]}"
        )


def ast_encoder(
    model: Any, folder: Path, extractor: dict[str, Any], *, weights: str
) -> HuggingFaceAST:
    """The AST model of ``folder`` as an encoder, its feature extractor read.

    Raises:
        MusicSSLError: the feature extractor does not fit the model.
    """
    transformers = need_transformers(PREFIX + str(folder))
    bank = transformers.ASTFeatureExtractor.from_dict(extractor)
    config = model.config
    where = f"{folder}: the feature extractor"
    if int(bank.sampling_rate) != RATE:
        raise MusicSSLError(f"{where} reads {bank.sampling_rate} Hz; AST reads {RATE} Hz")
    for name in ("num_mel_bins", "max_length"):
        if int(getattr(bank, name)) != int(getattr(config, name)):
            raise MusicSSLError(
                f"{where} has {name} {getattr(bank, name)}, the model {getattr(config, name)}"
            )
    return HuggingFaceAST(model, bank, path=str(folder), weights=weights)
