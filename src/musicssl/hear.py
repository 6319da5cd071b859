"""The HEAR API over musicssl checkpoints, for hear-eval-kit and other HEAR tools.

HEAR (Turian et al. 2022, "HEAR: Holistic Evaluation of Audio Representations") asks a
module for three functions: ``load_model``, ``get_scene_embeddings`` and
``get_timestamp_embeddings``. This module is that module; point hear-eval-kit at it by name,
with a checkpoint folder (or a run folder, whose latest checkpoint is used) as the model
file::

    python3 -m heareval.embeddings.runner musicssl.hear --model runs/clmr \\
        --tasks-dir hear-2021.0.6/tasks

Options of ``load_model`` (``hop``, ``device``) go in ``--model-options '{"hop": 0.1}'``.
The audio hear-eval-kit hands over must already be at the model's ``sample_rate``.

Scene embeddings are ``musicssl.embed.Model.embed(...).clip``: the mean of the encoder's clip
embedding over consecutive windows. Timestamp embeddings come from one window centred on each
timestamp (the signal is zero padded by half a window at both ends), timestamps every ``hop``
seconds from 0 to the end of the audio: the last layer's frames of that window, averaged.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from musicssl.embed import Model, load
from musicssl.errors import MusicSSLError

__all__ = ["HearModel", "get_scene_embeddings", "get_timestamp_embeddings", "load_model"]


class HearModel(nn.Module):
    """A loaded encoder with the attributes HEAR asks for.

    Args:
        model: the encoder and its preprocessing (``musicssl.embed.load``).
        hop: seconds between timestamps (HEAR suggests at most 0.05 for transcription).
    """

    def __init__(self, model: Model, *, hop: float = 0.05) -> None:
        super().__init__()
        model.window_step(hop)  # refuses a hop under one sample
        self.model = model
        self.encoder = model.encoder  # a submodule, so that .to() and .eval() reach it
        self.hop = hop
        self.sample_rate: int = model.sample_rate
        self.scene_embedding_size: int = model.embedding_dim
        with torch.no_grad():
            window = torch.zeros(1, model.window_samples, device=model.device)
            channels = model.encoder.forward_features(window).shape[1]
        self.timestamp_embedding_size: int = channels


def load_model(model_file_path: str = "", **kwargs) -> HearModel:
    """Load a checkpoint folder or a run folder.

    Args:
        model_file_path: the folder (``encoder.json`` + ``encoder.safetensors``, or a run
            folder with a ``latest`` file).
        **kwargs: ``hop`` (seconds between timestamps, default 0.05), ``device``.
    """
    if not model_file_path:
        raise MusicSSLError("musicssl.hear.load_model needs a checkpoint folder or run folder")
    unknown = set(kwargs) - {"hop", "device"}
    if unknown:
        raise MusicSSLError(f"load_model: unknown options {sorted(unknown)}; valid: hop, device")
    model = load(model_file_path, device=kwargs.get("device", "cpu"))
    return HearModel(model, hop=float(kwargs.get("hop", 0.05)))


def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    """One embedding per sound.

    Args:
        audio: mono sounds at ``model.sample_rate``, float in [-1, 1], zero padded to one
            length. Shape: (n_sounds, n_samples).

    Returns:
        float32 on the device of ``audio``. Shape: (n_sounds, scene_embedding_size).
    """
    sounds = _check(audio)
    clips = [model.model.embed(sound, model.sample_rate).clip for sound in sounds]
    return torch.from_numpy(np.stack(clips)).to(audio.device)


def get_timestamp_embeddings(audio: Tensor, model: HearModel) -> tuple[Tensor, Tensor]:
    """Embeddings centred every ``model.hop`` seconds, from 0 to the end of the audio.

    Args:
        audio: Shape: (n_sounds, n_samples), as for ``get_scene_embeddings``.

    Returns:
        Embeddings, float32, Shape: (n_sounds, n_timestamps, timestamp_embedding_size), and
        their centres in milliseconds, Shape: (n_sounds, n_timestamps); n_timestamps =
        1 + floor(n_samples / hop samples). Both on the device of ``audio``.
    """
    sounds = _check(audio)
    sr, window = model.sample_rate, model.model.window_samples
    duration = sounds.shape[1] / sr
    embeddings, centres = [], []
    step = model.model.window_step(model.hop)
    for sound in sounds:
        # Half a window of zeros at both ends, and on the right as many more as make the
        # windows tile the padded signal: every window starts on the hop grid.
        right = window - window // 2
        right += -(len(sound) + window // 2 + right - window) % step
        padded = np.pad(sound, (window // 2, right))
        # Each window's own frames (embed's one frame track keeps only the first window's
        # frames where windows overlap, as they do at a hop under the window).
        frames, starts = model.model.window_features(padded, hop=model.hop)
        # A window starting at s in the padded signal is centred on sample s of the sound
        # (to half a sample when the window is odd): that is its timestamp.
        times = starts / sr
        keep = times <= duration + 0.5 / sr  # windows centred past the end are dropped
        embeddings.append(frames[keep])
        centres.append(times[keep] * 1000.0)
    return (
        torch.from_numpy(np.stack(embeddings)).float().to(audio.device),
        torch.from_numpy(np.stack(centres)).float().to(audio.device),
    )


def _check(audio: Tensor) -> np.ndarray:
    if not isinstance(audio, Tensor) or audio.ndim != 2 or not audio.is_floating_point():
        shape = tuple(audio.shape) if isinstance(audio, Tensor) else type(audio).__name__
        raise MusicSSLError(f"HEAR audio must be a float tensor (n_sounds, n_samples), got {shape}")
    return audio.detach().float().cpu().numpy()
