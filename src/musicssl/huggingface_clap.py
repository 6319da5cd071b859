"""LAION-CLAP from a Hugging Face folder: its audio tower probed like a run, its text tower
scoring zero-shot and finding music by text.

The audio tower is HTS-AT: a log-mel spectrogram of a fixed crop (``max_length_s``, 10 s in
the published models), cut into ``freq_ratio`` quarters in time that are stacked along
frequency into a square image, then Swin transformer stages that halve the image each time.
Every stage's output is a layer (the patch embedding first, the last as the model outputs it,
after its final norm), its image unfolded back into time (the quarters side by side again)
and averaged over the frequency rows left, so each layer is a frame track across the crop.
The clip embedding is the mean of the last layer's frames: the model's own pooled output.

A window is one crop; a clip shorter than one is repeated and padded to fill it, as the
feature extractor does (``padding: repeatpad``), and only frames within the clip are kept.
The extractor's spectrogram is used as it is. One of its habits is not: for a fused model
(``enable_fusion``) it marks one short clip of each batch as longer at random, which sends
that clip through the fusion branch; here no window is longer than a crop, so none is, and a
clip's embedding depends neither on chance nor on the clips beside it (LAION-CLAP's own
inference does the same).

The text tower embeds a text as the model's ``get_text_features`` does; a clip embedding
goes through the audio projection (``project_audio``). Both are L2-normalised, so cosine
scores compare a text with music. They need the tokenizer that ``save_pretrained`` of the
processor writes beside the model.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from musicssl.errors import MusicSSLError
from musicssl.files import file_hash
from musicssl.huggingface import CLAP, PREFIX, HuggingFaceModel, first_line, need_transformers

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")
TOKENIZER_EXTRA_FILES = ("merges.txt", "special_tokens_map.json")  # read beside them


class HuggingFaceClap(HuggingFaceModel):
    """A ``transformers`` ``ClapModel``: its audio tower as an encoder, and its text tower.

    Args:
        model: the ``ClapModel``.
        extractor: its ``ClapFeatureExtractor`` (sample rate, crop, spectrogram).
        tokenizer: its text tokenizer, or the reason there is none (then ``has_text`` is
            False: the audio tower works alone).
        path: the folder it came from.
        weights: what identifies the weights (see ``load_huggingface``).
    """

    def __init__(
        self, model: Any, extractor: Any, tokenizer: Any, *, path: str, weights: str
    ) -> None:
        super().__init__()
        self.model = model
        self.extractor = extractor
        self.tokenizer = None if isinstance(tokenizer, str) else tokenizer
        self.no_text = tokenizer if isinstance(tokenizer, str) else ""
        self.path = path
        self.weights = weights
        self.kind = CLAP
        audio = model.config.audio_config
        stages = len(audio.depths)
        self.sample_rate = int(extractor.sampling_rate)
        self.input_samples = int(extractor.nb_max_samples)
        self.shortest_input = 1  # a shorter clip is repeated to fill the crop
        self.embedding_dim = int(audio.hidden_size)
        self.num_layers = stages + 1
        self.fusion = bool(audio.enable_fusion)
        self._ratio = int(audio.spec_size) // int(audio.num_mel_bins)
        # The spectrogram's frames, and the image's width in frames they are stretched to.
        self._mel_frames = 1 + self.input_samples // int(extractor.hop_length)
        self._width = int(audio.spec_size) * self._ratio
        stride = audio.patch_stride
        columns = int(audio.spec_size) // int(stride[1] if isinstance(stride, (list, tuple))
                                              else stride)  # fmt: skip
        # Frames per crop of each layer: the patch grid, halved by every stage but the last.
        self._frames = [self._ratio * columns // 2 ** min(k, stages - 1) for k in range(stages + 1)]

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        """Every stage's output as frames. Shape: (B, num_samples) -> (B, C_k, frames_k) each."""
        self.check_window(x, "crop")
        longer = torch.zeros(x.shape[0], 1, dtype=torch.bool, device=x.device)
        output = self.model.audio_model(
            input_features=self._spectrograms(x), is_longer=longer, output_hidden_states=True
        )
        states = [_unfold(state, self._ratio) for state in output.hidden_states[:-1]]
        states.append(output.last_hidden_state)  # unfolded already, after the final norm
        return [state.mean(dim=2) for state in states]  # (B, C, rows, frames) -> (B, C, frames)

    def _spectrograms(self, x: Tensor) -> Tensor:
        """The feature extractor's log-mel of each window, repeated to fill the crop."""
        signals = list(x.detach().float().cpu().numpy().astype(np.float64))
        # It draws its random "longer" clip from numpy's global state: left as it was found.
        state = np.random.get_state()  # noqa: NPY002
        try:
            found = self.extractor(signals, sampling_rate=self.sample_rate, return_tensors="np")
        finally:
            np.random.set_state(state)  # noqa: NPY002
        return torch.from_numpy(np.asarray(found["input_features"], np.float32)).to(x.device)

    def frame_hop(self, layer: int | None = None) -> int:
        """Input samples between frames of ``layer`` (None: the last), rounded."""
        frames = self._frames[-1 if layer is None else layer]
        return round(self.input_samples / frames)

    def frame_centres(
        self, num_frames: int, *, window: int, layer: int | None = None
    ) -> np.ndarray:
        """Where each frame sits in the crop (a shorter window is repeated to fill it, so the
        frames span the crop whatever ``window`` is). Frame ``i`` of ``num_frames`` covers
        image columns ``[i w, (i + 1) w)``, ``w = width / num_frames``; the spectrogram's
        frames were stretched onto those columns end to end, and frame ``j`` is centred on
        sample ``j * hop_length``."""
        columns = (np.arange(num_frames) + 0.5) * self._width / num_frames - 0.5
        spectrogram_frames = columns * (self._mel_frames - 1) / max(self._width - 1, 1)
        if self._mel_frames >= self._width:  # not stretched (the model refuses more frames)
            spectrogram_frames = columns
        return spectrogram_frames * int(self.extractor.hop_length)

    @property
    def has_text(self) -> bool:
        """Whether its tokenizer is in the folder: ``embed_text`` works."""
        return self.tokenizer is not None

    def embed_text(self, texts: list[str]) -> Tensor:
        """Texts in the joint space, L2-normalised. Shape: (len(texts), projection_dim)."""
        if self.tokenizer is None:
            raise MusicSSLError(f"{self.path}: {self.no_text}")
        if not texts:
            raise MusicSSLError("embed_text: no texts to embed")
        device = next(self.model.parameters()).device
        longest = min(int(self.tokenizer.model_max_length),
                      int(self.model.config.text_config.max_position_embeddings) - 2)  # fmt: skip
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=longest, return_tensors="pt"
        )
        output = self.model.text_model(
            input_ids=tokens["input_ids"].to(device),
            attention_mask=tokens["attention_mask"].to(device),
        )
        return F.normalize(self.model.text_projection(output.pooler_output), dim=-1)

    def project_audio(self, clips: Tensor) -> Tensor:
        """Clip embeddings in the joint space, L2-normalised. Shape: (N, hidden) -> (N, dim)."""
        if clips.ndim != 2 or clips.shape[-1] != self.embedding_dim:
            raise MusicSSLError(
                f"project_audio: clip embeddings of shape {tuple(clips.shape)}, expected "
                f"(num_clips, {self.embedding_dim}): this model's own (embed(...).clip)"
            )
        return F.normalize(self.model.audio_projection(clips), dim=-1)

    def identity(self) -> dict[str, str]:
        """Its weights' hash, and its tokenizer files' (which the zero-shot scores depend on)."""
        if self.tokenizer is None:
            return super().identity()
        names = TOKENIZER_FILES + TOKENIZER_EXTRA_FILES
        files = sorted(file for file in Path(self.path).iterdir() if file.name in names)
        text = "\n".join(f"{file.name}:{file_hash(file)}" for file in files)
        return {**super().identity(), "tokenizer": hashlib.sha256(text.encode()).hexdigest()}

    def layer_labels(self) -> list[str]:
        """The patch embedding, then each HTS-AT stage."""
        return ["patch embedding", *(f"stage {k}" for k in range(1, self.num_layers))]

    def describe(self) -> str:
        """What the report says of the model: its kind, size, input, text tower and weights."""
        seconds = self.input_samples / self.sample_rate
        text = "" if self.has_text else "; no zero-shot: its tokenizer is missing or unreadable"
        return (
            f"clap from {Path(self.path).resolve()}: the patch embedding and "
            f"{self.num_layers - 1} HTS-AT stages (up to {self.embedding_dim} wide), "
            f"{self.sample_rate} Hz in {seconds:g} s crops, a shorter clip repeated to fill one, "
            f"fusion {'on' if self.fusion else 'off'}{text}; weights sha256 {self.weights[:16]}"
        )


def _unfold(image: Tensor, ratio: int) -> Tensor:
    """An HTS-AT image back in time order. Shape: (B, C, rows, columns) -> (B, C, rows /
    ratio, columns * ratio): the image stacks ``ratio`` quarters of the crop in time, each
    ``rows / ratio`` rows of frequency, so row block ``r`` holds the frames after block
    ``r - 1``'s."""
    batch, channels, rows, columns = image.shape
    quarters = image.reshape(batch, channels, ratio, rows // ratio, columns)
    return quarters.permute(0, 1, 3, 2, 4).reshape(batch, channels, rows // ratio, -1)


def clap_encoder(
    model: Any, folder: Path, extractor: dict[str, Any], *, weights: str
) -> HuggingFaceClap:
    """The CLAP model of ``folder`` as an encoder, its feature extractor and tokenizer read.

    Raises:
        MusicSSLError: the feature extractor's spectrogram does not fit the model.
    """
    transformers = need_transformers(PREFIX + str(folder))
    spectrogram = transformers.ClapFeatureExtractor.from_dict(extractor)
    audio = model.config.audio_config
    where = f"{folder}: the feature extractor"
    if int(spectrogram.feature_size) != int(audio.num_mel_bins):
        raise MusicSSLError(
            f"{where} makes {spectrogram.feature_size} mel bands, the model reads "
            f"{audio.num_mel_bins} (num_mel_bins)"
        )
    frames = 1 + int(spectrogram.nb_max_samples) // int(spectrogram.hop_length)
    width = int(audio.spec_size) * (int(audio.spec_size) // int(audio.num_mel_bins))
    if frames > width:
        raise MusicSSLError(
            f"{where}'s crop makes {frames} frames, more than the model's {width} "
            "(spec_size x spec_size / num_mel_bins)"
        )
    fused = spectrogram.truncation == "fusion"  # four spectrograms a crop, HTK mel bands
    if fused != bool(audio.enable_fusion):
        raise MusicSSLError(
            f"{where} has truncation {spectrogram.truncation!r} for a model with enable_fusion "
            f"{bool(audio.enable_fusion)}: set truncation to "
            f"{'fusion' if audio.enable_fusion else 'rand_trunc'}, as the model was trained"
        )
    tokenizer = _tokenizer(folder, model, transformers)
    return HuggingFaceClap(model, spectrogram, tokenizer, path=str(folder), weights=weights)


def _tokenizer(folder: Path, model: Any, transformers: Any) -> Any:
    """The folder's tokenizer, or why there is none: missing, unreadable, or without the
    text tower's vocabulary (a ``tokenizer_config.json`` left alone reads as five tokens)."""
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return (
            f"no tokenizer beside the CLAP model ({', '.join(TOKENIZER_FILES)}); save its "
            "processor into the folder (processor.save_pretrained)"
        )
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            os.fspath(folder), local_files_only=True
        )
    except Exception as error:  # tokenizers and json raise many kinds for a bad file
        return f"its tokenizer is unreadable ({first_line(error)})"
    known, vocabulary = len(tokenizer), int(model.config.text_config.vocab_size)
    if not vocabulary // 2 <= known <= vocabulary:
        return (
            f"its tokenizer knows {known} tokens, the text tower {vocabulary}: a tokenizer file "
            "missing (tokenizer.json, or vocab.json and merges.txt), or another model's"
        )
    return tokenizer
