"""Embeddings from a trained encoder: clip vectors and timestamped frame tracks.

``load(checkpoint)`` rebuilds the encoder from its checkpoint alone (through
``musicssl.checkpoint``) and returns a ``Model`` whose ``embed(waveform, sr)`` handles audio of
any length, rate, channel count and sample format (float, or integer PCM): it downmixes,
resamples, cuts windows, encodes them in bounded batches and mean-pools. Every layer comes
from the same forward pass of each window batch. ``musicssl.embed_folder.embed_files`` does
the same over a folder, a manifest or a store and writes an ``.npz``.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from musicssl import checkpoint
from musicssl.encoders import Encoder
from musicssl.errors import MusicSSLError
from musicssl.files import file_hash
from musicssl.huggingface import HuggingFaceModel, is_huggingface, load_huggingface
from musicssl.waveform import mono_at
from musicssl.windowing import finite, one_track, windows


@dataclass
class Embeddings:
    """Clip embeddings of one audio signal.

    Attributes:
        clip: the encoder's clip embedding, mean over windows. Shape: (embedding_dim,).
        layers: per-layer vectors, when asked for: with the "freq" read-out of an encoder
            with 2-D maps, each layer's channels x frequency bins flattened, averaged over
            time and windows (so wider than the layer's frames); else the mean of its frame
            features over time and windows. Shape: (C_k,) or (C_k * F_k,) each.
        frames: frame features of the chosen layer. Shape: (num_frames, channels).
        times: centre of each frame in seconds. Shape: (num_frames,).
        layer_frames: with every layer and frames, each layer's frame features averaged
            onto the frames of ``frames`` (same ``times``). Shape: (num_frames, C_k) each.
    """

    clip: np.ndarray
    layers: list[np.ndarray] | None = None
    frames: np.ndarray | None = None
    times: np.ndarray | None = None
    layer_frames: list[np.ndarray] | None = None


READOUTS = ("mean", "freq")
# The frequency bins of the layers' maps carry what pitch, key and timbre tasks need and what a
# maximum over frequency loses (measured: bench/results/transfer_cpu.md, "Read-out").
DEFAULT_READOUT = "freq"
# The highest rate audio interfaces and formats use (DXD is 352.8 kHz); a larger ``sr`` is a
# mistake (samples passed as the rate, a rate in mHz), not audio.


class Model:
    """A trained encoder with its preprocessing.

    Args:
        encoder: a registry encoder (see ``musicssl.encoders``).
        device: where to run it.
        readout: how a layer's features become its clip vector: "freq" (the default), the
            mean over time of the 2-D feature maps, frequency bins kept and flattened
            (channels x bins), for encoders with ``forward_maps`` (the short-chunk CNN), or
            "mean" over frames of the encoder's frame features, whose frequency axis, if any,
            is already reduced; encoders without maps read out "mean" either way. The clip
            embedding (``emb``) is the encoder's own pooling in both.
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        device: str | torch.device = "cpu",
        readout: str = DEFAULT_READOUT,
    ) -> None:
        if not isinstance(encoder, Encoder):
            raise MusicSSLError(
                f"{type(encoder).__name__} lacks the encoder interface (musicssl.encoders)"
            )
        if readout not in READOUTS:
            raise MusicSSLError(f"readout={readout!r}: choose one of {', '.join(READOUTS)}")
        self.readout = readout
        self.encoder: Encoder = encoder
        encoder.eval().to(device)
        self.device = torch.device(device)
        self.sample_rate: int = encoder.sample_rate
        self.window_samples: int = encoder.input_samples
        self.embedding_dim: int = encoder.embedding_dim
        self.num_layers: int = encoder.num_layers
        self.checkpoint: str | os.PathLike | None = None  # set by ``load``
        self._text_side: Any = None

    @property
    def fingerprint(self) -> str | None:
        """Which weights (and read-out) embed: the sha256 of the checkpoint's encoder weights
        (or of a Hugging Face folder's model files) and the read-out's name; None for a model
        built without either. ``embed`` writes it into its ``.npz`` so that a search index can
        tell a query's run from another."""
        if self.checkpoint is not None:
            weights = file_hash(checkpoint.encoder_weights(self.checkpoint))
        elif isinstance(self.encoder, HuggingFaceModel):
            weights = self.encoder.weights
        else:
            return None
        return f"{weights}:{self.readout}"

    @property
    def has_text(self) -> bool:
        """Whether the checkpoint holds a text tower (CLAP, SLAP), or the model is a Hugging
        Face CLAP with its tokenizer: ``embed_text`` works."""
        from musicssl.search import has_text_tower

        if self.checkpoint is None:
            return bool(getattr(self.encoder, "has_text", False))
        return has_text_tower(self.checkpoint)

    @torch.no_grad()
    def embed_text(self, texts: list[str] | str) -> np.ndarray:
        """Texts in the run's joint audio-text space, L2-normalised. Shape: (len(texts), dim).

        Raises:
            MusicSSLError: the run has no text tower, or ``texts`` is not a list of strings
                (one string is taken as a list of one).
        """
        if isinstance(texts, str):
            texts = [texts]
        if not all(isinstance(text, str) for text in texts):
            raise MusicSSLError("embed_text: texts must be strings")
        return self._text().embed_text(list(texts)).float().cpu().numpy()

    @torch.no_grad()
    def project_audio(self, clips: np.ndarray) -> np.ndarray:
        """Clip embeddings of this encoder in the joint space, L2-normalised.

        Shape: (num_clips, embedding_dim) -> (num_clips, dim).
        """
        x = torch.as_tensor(np.asarray(clips, dtype=np.float32), device=self.device)
        return self._text().project_audio(x).float().cpu().numpy()

    def _text(self) -> Any:
        # Built on first use: an audio-only caller never needs a text tower's files.
        if self._text_side is None:
            from musicssl.search import text_side

            if self.checkpoint is None and hasattr(self.encoder, "embed_text"):
                return self.encoder  # a Hugging Face CLAP: its own text tower
            if self.checkpoint is None:
                raise MusicSSLError(
                    "this model has no text tower: text goes through a run of an audio-text "
                    "recipe (clap-shortchunk-cpu, slap-shortchunk-cpu) or a CLAP model (hf:FOLDER)"
                )
            self._text_side = text_side(self.checkpoint, device=self.device)
        return self._text_side

    def embed(
        self,
        waveform: np.ndarray | Tensor,
        sr: int,
        *,
        hop: float | None = None,
        layers: str | int | None = None,
        frames: bool = False,
        batch_size: int = 16,
    ) -> Embeddings:
        """Embed one signal of any length.

        Args:
            waveform: Shape: (num_samples,) or (channels, num_samples), downmixed as audio
                files are. Float in [-1, 1], or integer PCM (int8, int16, int32, uint8),
                scaled to [-1, 1) as audio files are.
            sr: its sample rate in Hz.
            hop: seconds between window starts (default: the window length, no overlap).
            layers: also pool each layer: an index, or "all".
            frames: also return the frame track of the last layer (or of ``layers`` if an
                index), with timestamps; with ``layers="all"``, every layer's track too,
                each averaged in time onto the last layer's frames.
            batch_size: windows encoded at once (bounds memory).

        Raises:
            MusicSSLError: a bad shape or sample format, non-finite samples, a bad ``sr``,
                ``hop`` or ``layers``.
        """
        self.check_options(hop=hop, layers=layers, batch_size=batch_size, frames=frames)
        signal = mono_at(waveform, sr, target_sr=self.sample_rate)
        return self.embed_stream(
            iter([signal]), hop=hop, layers=layers, frames=frames, batch_size=batch_size
        )

    def embed_stream(
        self,
        blocks: Iterable[np.ndarray],
        *,
        hop: float | None = None,
        layers: str | int | None = None,
        frames: bool = False,
        batch_size: int = 16,
    ) -> Embeddings:
        """Like ``embed``, over consecutive blocks of one signal already at ``sample_rate``
        (each read as ``embed`` reads a signal: float or integer PCM, mono or channels first).

        The frame track is one track in time order within the signal: where windows overlap
        (a ``hop`` under the window, the tail window) the earlier window's frames are kept,
        and frames of the padding past a short signal's end are dropped (a signal shorter
        than half a frame keeps its one frame, timed at the signal's middle).
        """
        length = [0]

        def counted(stream: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
            for given in stream:
                # Read as audio is read: integer PCM scaled, channels averaged, checked.
                block = mono_at(given, self.sample_rate, target_sr=self.sample_rate)
                length[0] += len(block)
                yield block

        result = self._pool(
            self._encode(
                counted(finite(blocks)),
                hop=hop,
                layers=layers,
                frames=frames,
                batch_size=batch_size,
            ),
            frames=frames,
            frame_layer=self._frame_layer(layers, frames),
        )
        if result.frames is not None and result.times is not None:
            duration = length[0] / self.sample_rate
            keep = one_track(result.times, duration)
            result.frames, result.times = result.frames[keep], result.times[keep]
            # A signal shorter than half a frame: its one frame sits at the signal's middle.
            result.times[0] = min(result.times[0], duration / 2)
            if result.layer_frames is not None:
                result.layer_frames = [track[keep] for track in result.layer_frames]
        return result

    def window_features(
        self, signal: np.ndarray, *, hop: float | None = None, batch_size: int = 16
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each window's frame features of the last layer averaged in time, and the window's
        first sample: Shapes (n_windows, channels) and (n_windows,). ``signal`` is mono
        float32 at ``sample_rate``; the windows are ``embed``'s (``hop`` apart, the tail
        window ending with the signal)."""
        features, starts = [], []
        for _, _, tracks, first, _ in self._encode(iter([signal]), hop=hop, layers=None,
                                                   frames=True, batch_size=batch_size):  # fmt: skip
            features.append(tracks[0].mean(dim=-1).numpy())
            starts.append(first)
        return np.concatenate(features), np.concatenate(starts)

    def layer_indices(self, layers: str | int | None) -> list[int]:
        """The encoder layers that ``layers`` (None, an index, or "all") names.

        Raises:
            MusicSSLError: not an index in ``[-num_layers, num_layers)`` nor "all".
        """
        if layers is None:
            return []
        if layers == "all":
            return list(range(self.num_layers))
        if isinstance(layers, (bool, float, np.floating)):  # int() would round 1.7 to 1
            raise MusicSSLError(f"layer must be an integer or 'all', got {layers!r}")
        try:
            index = int(layers)
        except (TypeError, ValueError):
            raise MusicSSLError(f"layer must be an integer or 'all', got {layers!r}") from None
        if not -self.num_layers <= index < self.num_layers:
            raise MusicSSLError(
                f"layer {index} out of range: the encoder has {self.num_layers} layers "
                f"(0 to {self.num_layers - 1}, or negative from the end)"
            )
        return [index % self.num_layers]

    def check_options(
        self, *, hop: float | None, layers: str | int | None, batch_size: int, frames: bool = False
    ) -> None:
        """Raise a ``MusicSSLError`` for options that ``embed`` would refuse, before any work."""
        if not isinstance(frames, (bool, np.bool_)):
            raise MusicSSLError(f"frames must be True or False, got {frames!r}")
        self.window_step(hop)
        self.layer_indices(layers)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise MusicSSLError(f"batch_size must be a positive integer, got {batch_size!r}")

    def window_step(self, hop: float | None) -> int:
        """Samples between window starts for ``hop`` seconds (None: the encoder's
        ``window_hop``, else one window: no overlap).

        Raises:
            MusicSSLError: ``hop`` is not a finite number of seconds of at least one sample.
        """
        if hop is None:
            return self.encoder.window_hop or self.window_samples
        if not isinstance(hop, numbers.Real) or isinstance(hop, bool):
            raise MusicSSLError(f"hop must be a number of seconds, got {hop!r}")
        step = round(hop * self.sample_rate) if math.isfinite(hop) else 0
        if step < 1:
            raise MusicSSLError(
                f"hop must be at least one sample (1/{self.sample_rate} s), got {hop} s"
            )
        return step

    @torch.no_grad()
    def _encode(
        self,
        blocks: Iterator[np.ndarray],
        *,
        hop: float | None,
        layers: str | int | None,
        frames: bool,
        batch_size: int,
    ) -> Iterator[tuple[Tensor, list[Tensor], list[Tensor], np.ndarray, int]]:
        """Encode windows in batches; yields (clip, per-layer means, frame tracks, window
        starts, window length in samples). The frame tracks are the chosen layer's, then,
        with every layer, each layer's averaged in time onto it (all of shape (B, C_k, T)).

        Layers and frames come from one pass per batch (``forward_layers``), the clip from
        the last layer of that pass.
        """
        self.check_options(hop=hop, layers=layers, batch_size=batch_size, frames=frames)
        window, step = self.window_samples, self.window_step(hop)
        indices = self.layer_indices(layers)
        frame_layer = self._frame_layer(layers, frames)
        shortest = self.encoder.shortest_input
        cut = windows(blocks, window=window, step=step, batch_size=batch_size, shortest=shortest)
        for starts, batch in cut:
            x = torch.from_numpy(batch).to(self.device)
            if not indices and not frames:
                yield self.encoder(x).float().cpu(), [], [], starts, x.shape[-1]
                continue
            maps = None
            forward_maps = getattr(self.encoder, "forward_maps", None)
            if self.readout == "freq" and forward_maps is not None:
                maps = forward_maps(x)  # (B, C_k, F_k, T_k) per layer
                outputs = [m.amax(dim=2) for m in maps]  # what forward_layers gives
            else:
                outputs = self.encoder.forward_layers(x)  # (B, C_k, T_k) per layer
            clip = self.encoder.pool(outputs[-1]).float().cpu()
            if maps is not None:
                means = [maps[k].float().mean(dim=-1).flatten(1).cpu() for k in indices]
            else:
                means = [outputs[k].float().mean(dim=-1).cpu() for k in indices]
            tracks = []
            if frames:
                tracks = [outputs[frame_layer]]
                if len(indices) > 1:  # every layer onto the chosen layer's frames
                    count = tracks[0].shape[-1]
                    tracks += [F.adaptive_avg_pool1d(outputs[k], count) for k in indices]
            yield clip, means, [t.float().cpu() for t in tracks], starts, x.shape[-1]

    def _frame_layer(self, layers: str | int | None, frames: bool) -> int:
        """The layer whose frames make the frame track: the one chosen, else the last."""
        indices = self.layer_indices(layers)
        return indices[0] if (frames and len(indices) == 1) else self.num_layers - 1

    def _pool(
        self,
        batches: Iterator[tuple[Tensor, list[Tensor], list[Tensor], np.ndarray, int]],
        *,
        frames: bool,
        frame_layer: int,
    ) -> Embeddings:
        clip_sum, layer_sums, count = None, None, 0
        tracks: list[list[np.ndarray]] = []  # per track (chosen layer, then every layer)
        times = []
        for clip, means, batch_tracks, starts, width in batches:
            clip_sum = clip.sum(0) if clip_sum is None else clip_sum + clip.sum(0)
            sums = [m.sum(0) for m in means]
            layer_sums = sums if layer_sums is None else [a + b for a, b in zip(layer_sums, sums)]
            count += clip.shape[0]
            if batch_tracks:
                centres = self.encoder.frame_centres(batch_tracks[0].shape[-1], window=width,
                                                     layer=frame_layer)  # fmt: skip
                times += [(start + centres) / self.sample_rate for start in starts]
                tracks = tracks or [[] for _ in batch_tracks]
                for kept, track in zip(tracks, batch_tracks):
                    kept += [features.T.numpy() for features in track]  # (frames, channels)
        if clip_sum is None:
            raise MusicSSLError("no audio to embed (empty signal)")
        result = Embeddings(clip=(clip_sum / count).numpy())
        if layer_sums:
            result.layers = [(s / count).numpy() for s in layer_sums]
        if frames:
            result.frames = np.concatenate(tracks[0])
            result.times = np.concatenate(times)
            if len(tracks) > 1:
                result.layer_frames = [np.concatenate(kept) for kept in tracks[1:]]
        return result


def load(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", readout: str = DEFAULT_READOUT
) -> Model:
    """Rebuild a trained encoder from a checkpoint folder or a run folder (its latest one),
    or load an audio model from a Hugging Face folder (``"hf:FOLDER"``, see
    ``musicssl.huggingface``).

    Args:
        path: a run folder (its latest checkpoint is read), one checkpoint folder, or
            ``"hf:FOLDER"``.
        device: where the encoder runs ("cpu", "cuda", "cuda:1", "mps").
        readout: how a layer becomes a clip vector with ``layers=``: "freq" or "mean" (see
            ``Model``).

    Returns:
        A ``Model``: ``embed(signal, sr)`` gives ``Embeddings``; ``sample_rate``,
        ``embedding_dim`` and ``num_layers`` describe the encoder.

    No pickle is read: ``musicssl.checkpoint.load_encoder`` rebuilds the architecture from
    ``encoder.json`` and reads the weights from ``encoder.safetensors``.

    Raises:
        MusicSSLError: the folder is not a checkpoint, or its weights are unreadable or do
            not fit the architecture.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise MusicSSLError(f"path must be a run or checkpoint folder, got {path!r}")
    if is_huggingface(path):
        return Model(load_huggingface(path), device=device, readout=readout)
    if str(path)[:3].lower() == "hf:":
        raise MusicSSLError(f"{path}: write hf: in lower case (hf:FOLDER)")
    model = Model(checkpoint.load_encoder(path), device=device, readout=readout)
    model.checkpoint = path
    return model
