"""An audio model from a Hugging Face folder on this machine, embedded and probed like a run.

``hf:FOLDER`` names one wherever a run is read (``musicssl embed``, ``evaluate``, ``search``,
``musicssl.load``), so a published model is probed by the same protocol, beside the same
baselines, as a run of this toolkit. It reads the wav2vec 2.0 family (``MODEL_TYPES``: a
convolutional feature encoder over the waveform, then transformer blocks at its frame rate),
MERT, LAION-CLAP (``musicssl.huggingface_clap``: its audio tower probed, its text tower
scoring zero-shot and searching by text) and the Audio Spectrogram Transformer
(``musicssl.huggingface_ast``). The folder is what ``save_pretrained`` writes:
``config.json``, the weights, and the feature extractor's settings
(``preprocessor_config.json``, or the ``feature_extractor`` of a whole processor's
``processor_config.json``). Nothing is downloaded.

Every hidden state is a layer: the feature encoder's projected frames first, then the output
of each transformer block (the last as the model outputs it, after the final norm of the
large layouts), so ``--layers all`` probes each. Windows start ``WINDOW_SECONDS`` apart (the
crop MERT and many music models train on) and reach one frame's overhang further, so their
frames tile the signal; each is normalised as the feature extractor would, a clip shorter
than a window is encoded as it is, and the clip embedding is the mean of the last layer's
frames.

No code that came with a model is run. A MERT folder (``model_type: mert_model``) is read as
the HuBERT it is built on when its config turns off what MERT adds to it
(``feature_extractor_cqt``, ``deepnorm``, ``attention_relax``), and refused, naming the
option, otherwise; any other folder with code of its own (``auto_map`` in its config) is
refused: embed with that code, save ``names`` and ``emb`` in an ``.npz``, and evaluate that.
Weights that leave a tensor of the model unfilled, or hold blocks its config lacks, are
refused rather than left at random or dropped. ``transformers`` is an optional extra
(``pip install musicssl[huggingface]``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from musicssl.encoders._shared import check_waveforms
from musicssl.encoders.base import Encoder
from musicssl.errors import MusicSSLError
from musicssl.files import file_hash

PREFIX = "hf:"
HUGGINGFACE = "huggingface"  # what a random-weights baseline of such a model names it
WINDOW_SECONDS = 5.0
WEIGHT_FILES = ("*.safetensors", "*.bin")
# The models read: a convolutional feature encoder over the waveform, then transformer blocks
# at its frame rate, every hidden state (B, frames, hidden_size). (SEW pools frames inside
# its encoder, SpeechT5 is an encoder-decoder, wav2vec2-bert reads spectrogram features.)
MODEL_TYPES = (
    "wav2vec2",
    "wav2vec2-conformer",
    "hubert",
    "wavlm",
    "data2vec-audio",
    "unispeech",
    "unispeech-sat",
)
MERT = "mert_model"
CLAP = "clap"
AST = "audio-spectrogram-transformer"
# Where save_pretrained writes the feature extractor's settings: alone, or in a processor's.
EXTRACTOR_FILES = ("preprocessor_config.json", "processor_config.json")
# What MERT adds to HuBERT, and the value that leaves it out.
MERT_ADDITIONS = {"feature_extractor_cqt": False, "deepnorm": False, "attention_relax": -1.0}


def is_huggingface(spec: object) -> bool:
    """Whether ``spec`` names a Hugging Face folder (``hf:FOLDER``)."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def need_transformers(what: str) -> Any:
    """The ``transformers`` module, its progress bars off (a load is quick and offline).

    Raises:
        MusicSSLError: it is not installed.
    """
    try:
        import transformers
    except ImportError:
        raise MusicSSLError(
            f"{what} needs transformers: pip install musicssl[huggingface]"
        ) from None
    transformers.utils.logging.disable_progress_bar()
    return transformers


def first_line(error: Exception) -> str:
    """An exception's first line, or its type's name when it says nothing."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class HuggingFaceModel(Encoder):
    """What every model read from a Hugging Face folder has: its folder, what identifies its
    weights, and its ``model_type``; ``describe`` says all three in the report."""

    path: str
    weights: str
    kind: str

    def config(self) -> dict[str, Any]:
        return {"path": self.path}

    def describe(self) -> str:
        raise NotImplementedError

    def identity(self) -> dict[str, str]:
        """What the evaluation cache knows the model's results by: its weights' hash."""
        return {"huggingface": self.weights}

    def check_window(self, x: Tensor, unit: str) -> None:
        """Refuse what is not a batch of waveforms, or is longer than one ``unit`` (the fixed
        input a spectrogram model reads; ``embed`` cuts longer audio into such windows)."""
        check_waveforms(x, PREFIX + self.path)
        if x.shape[-1] > self.input_samples:
            raise MusicSSLError(
                f"{PREFIX}{self.path}: reads at most {self.input_samples} samples (one {unit}), "
                f"got {x.shape[-1]}; musicssl.load(...).embed cuts longer audio into {unit}s"
            )


class HuggingFaceAudio(HuggingFaceModel):
    """A ``transformers`` audio model with a convolutional feature encoder, as an encoder.

    Args:
        model: the ``AutoModel`` (wav2vec 2.0 family: ``input_values`` in, ``hidden_states``
            out).
        path: the folder it came from, for messages and ``config``.
        sample_rate: the rate its feature extractor expects.
        normalize: whether each window is scaled to zero mean and unit variance first, as
            the feature extractor's ``do_normalize`` does.
        weights: what identifies the weights: a hash of the folder's model files, or of its
            config for random weights.
        kind: the ``model_type`` its folder gives (``mert_model`` for MERT read as HuBERT).
    """

    def __init__(
        self,
        model: Any,
        *,
        path: str,
        sample_rate: int,
        normalize: bool,
        weights: str,
        kind: str,
    ) -> None:
        super().__init__()
        self.model = model
        self.path = path
        self.normalize = normalize
        self.weights = weights
        self.kind = kind
        self.embedding_dim = int(model.config.hidden_size)
        self.sample_rate = int(sample_rate)
        self.num_layers = int(model.config.num_hidden_layers) + 1
        strides = [int(stride) for stride in model.config.conv_stride]
        kernels = [int(kernel) for kernel in model.config.conv_kernel]
        self._hop = math.prod(strides)
        # The samples one frame reads (its convolutions pad nothing): the shortest input.
        self.shortest_input = 1 + sum(
            (kernel - 1) * math.prod(strides[:i]) for i, kernel in enumerate(kernels)
        )
        # Windows start WINDOW_SECONDS apart and reach one frame's overhang further, so that
        # the frames of consecutive windows tile the signal, a hop apart, none missing.
        self.window_hop = round(WINDOW_SECONDS * self.sample_rate / self._hop) * self._hop
        self.input_samples = self.window_hop + self.shortest_input - self._hop

    def forward_layers(self, x: Tensor) -> list[Tensor]:
        """Every hidden state. Shape: (B, num_samples) -> (B, hidden_size, frames) each."""
        check_waveforms(x, PREFIX + self.path)
        if self.normalize:  # as Wav2Vec2FeatureExtractor: (x - mean) / sqrt(var + 1e-7)
            mean = x.mean(dim=-1, keepdim=True)
            var = x.var(dim=-1, keepdim=True, unbiased=False)
            x = (x - mean) / torch.sqrt(var + 1e-7)
        output = self.model(input_values=x, output_hidden_states=True)
        # The last layer is the model's output: a "stable layer norm" model (the large
        # layouts) norms it after its last hidden state.
        states = [*output.hidden_states[:-1], output.last_hidden_state]
        return [state.transpose(1, 2) for state in states]

    def frame_hop(self, layer: int | None = None) -> int:
        """Input samples between frames: the product of the feature encoder's strides."""
        return self._hop

    def frame_centres(
        self, num_frames: int, *, window: int, layer: int | None = None
    ) -> np.ndarray:
        """The centre of the samples each frame reads: frame ``i`` reads
        ``[i * hop, i * hop + shortest_input)``."""
        assert self.shortest_input is not None
        return (self.shortest_input - 1) / 2 + np.arange(num_frames) * self._hop

    def describe(self) -> str:
        """What the report says of the model: its kind, size, input and weights."""
        kind = "MERT, read as HuBERT," if self.kind == MERT else self.kind
        return (
            f"{kind} from {Path(self.path).resolve()}: {self.num_layers} layers of "
            f"{self.embedding_dim}, {self.sample_rate} Hz in {WINDOW_SECONDS:g} s windows"
            f"{', each normalised' if self.normalize else ''}; weights sha256 {self.weights[:16]}"
        )


def load_huggingface(path: str | os.PathLike, *, seed: int | None = None) -> HuggingFaceModel:
    """The audio model saved in the folder ``path``, with no network access.

    Args:
        path: a ``save_pretrained`` folder (``hf:`` in front is taken off).
        seed: None for the saved weights; else the same architecture with random weights
            drawn from this seed (the ``baseline:random`` of the model), the global random
            state left as it was.

    Raises:
        MusicSSLError: ``transformers`` is missing, or the folder holds no model this reads
            (each reason named).
    """
    folder = model_path(path)
    transformers = need_transformers(PREFIX + str(folder))
    config, extractor = _read_configs(folder)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # its load report: refused below, in one line
    try:
        architecture, known = _architecture(folder, config, transformers)
        if seed is None:
            model, loading = architecture.from_pretrained(
                folder, config=known, local_files_only=True, output_loading_info=True
            )
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model, loading = transformers.AutoModel.from_config(known), {}
    except MusicSSLError:
        raise
    except Exception as error:  # transformers and safetensors raise many kinds for a bad file
        reason = first_line(error)
        if "mismatched_sizes" in reason:  # its own words point at the report it printed
            reason = "tensors whose shapes differ from those config.json gives"
        files = [file.name for file in _weight_files(folder)]
        source = f" from {', '.join(files)}" if files else ""
        raise MusicSSLError(f"{folder}: cannot load the model{source} ({reason})") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    _check_loaded(folder, model, loading)
    if seed is None:
        weights = _weights_hash(folder)
    else:  # the architecture: its config
        weights = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    if config["model_type"] == CLAP:
        from musicssl.huggingface_clap import clap_encoder

        return clap_encoder(model.float(), folder, extractor, weights=weights)
    if config["model_type"] == AST:
        from musicssl.huggingface_ast import ast_encoder

        return ast_encoder(model.float(), folder, extractor, weights=weights)
    return HuggingFaceAudio(
        model.float(),
        path=str(folder),
        sample_rate=int(extractor["sampling_rate"]),
        normalize=bool(extractor.get("do_normalize", False)),
        weights=weights,
        kind=str(config["model_type"]),
    )


def _check_loaded(folder: Path, model: Any, loading: dict[str, Any]) -> None:
    """Refuse weights that leave a tensor of the model unfilled, or that hold tensors of the
    model's own parts it has no place for (more blocks than its config): weights of another
    architecture. A head beside the model (a CTC save's ``lm_head``) is left out quietly."""
    missing = sorted(loading.get("missing_keys", ()))
    if missing:
        raise MusicSSLError(
            f"{folder}: the weights leave {len(missing)} of the model's tensors unfilled "
            f"({missing[0]}, ...): weights of another architecture?"
        )
    parts = {name for name, _ in model.named_children()}
    extra = sorted(key for key in loading.get("unexpected_keys", ()) if key.split(".")[0] in parts)
    if extra:
        raise MusicSSLError(
            f"{folder}: the weights hold {len(extra)} tensors the model's config has no place "
            f"for ({extra[0]}, ...): a config of another size?"
        )


def model_path(spec: str | os.PathLike) -> Path:
    """The folder of ``hf:FOLDER`` (``~`` expanded).

    Raises:
        MusicSSLError: no folder is named.
    """
    text = str(spec).removeprefix(PREFIX)
    if not text:
        raise MusicSSLError("hf: names no folder: give the model's folder after it (hf:FOLDER)")
    return Path(os.path.expanduser(text))


def _architecture(folder: Path, config: dict[str, Any], transformers: Any) -> tuple[Any, Any]:
    """The model class to load the folder with, and its config (a MERT one as HuBERT's)."""
    if config.get("model_type") == MERT:
        return transformers.HubertModel, _mert_as_hubert(folder, config, transformers)
    return transformers.AutoModel, transformers.AutoConfig.from_pretrained(
        folder, local_files_only=True
    )


def _mert_as_hubert(folder: Path, config: dict[str, Any], transformers: Any) -> Any:
    """A MERT config as the ``HubertConfig`` it equals when MERT's additions are off.

    Raises:
        MusicSSLError: one of them is on (the model is not a HuBERT).
    """
    for option, off in MERT_ADDITIONS.items():
        value = config.get(option, off)
        relaxed = option == "attention_relax" and isinstance(value, (int, float)) and value <= 0
        if value not in (None, off) and not relaxed:
            raise MusicSSLError(
                f"{folder}: a MERT model with {option}={value!r}, which the HuBERT it is built "
                "on lacks; embed with MERT's own code, save names and emb in an .npz, and "
                "evaluate the .npz"
            )
    kept = {key: value for key, value in config.items() if key not in ("model_type", "auto_map")}
    return transformers.HubertConfig(**kept)


def _read_configs(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The folder's ``config.json`` and its feature extractor's settings, checked to describe
    a model this reads."""
    if folder.is_file():
        raise MusicSSLError(f"{folder}: not a folder (hf: names the folder save_pretrained wrote)")
    if not folder.is_dir():
        raise MusicSSLError(f"{folder}: no such model folder (a local save_pretrained folder)")
    config = _json(folder / "config.json", "the model's config, which save_pretrained writes")
    model_type = config.get("model_type")
    if "auto_map" in config and model_type != MERT:
        raise MusicSSLError(
            f"{folder}: the model ({model_type}) comes with code of its own (auto_map), which "
            "musicssl does not run: embed with that code, save names and emb in an .npz, "
            "and evaluate the .npz"
        )
    if model_type not in (*MODEL_TYPES, MERT, CLAP, AST):
        raise MusicSSLError(
            f"{folder}: a model of type {model_type}; hf: reads {', '.join(MODEL_TYPES)}, MERT "
            "(a convolutional feature encoder over the waveform, then transformer blocks), "
            "CLAP and AST models"
        )
    path = _extractor_file(folder)
    extractor = _json(
        path,
        f"the feature extractor's settings: save_pretrained writes them there, or into "
        f"{EXTRACTOR_FILES[1]} with a processor's",
    )
    if path.name != EXTRACTOR_FILES[0]:  # a whole processor's: the extractor's are one part
        part = extractor.get("feature_extractor")
        if not isinstance(part, dict):
            raise MusicSSLError(f"{path}: holds no feature_extractor settings")
        extractor = part
    rate = extractor.get("sampling_rate")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate < 1:
        raise MusicSSLError(f"{path}: sampling_rate must be a rate in Hz, got {rate!r}")
    return config, extractor


def _extractor_file(folder: Path) -> Path:
    """The file holding the feature extractor's settings: its own, else the processor's."""
    found = [folder / name for name in EXTRACTOR_FILES if (folder / name).is_file()]
    return found[0] if found else folder / EXTRACTOR_FILES[0]


def _json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise MusicSSLError(f"{path}: missing ({what})")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MusicSSLError(f"{path}: unreadable ({first_line(error)})") from None
    if not isinstance(value, dict):
        raise MusicSSLError(f"{path}: not a JSON object")
    return value


def _weights_hash(folder: Path) -> str:
    """One hash over the model's weight files, its config and its feature extractor's:
    what makes its embeddings."""
    files = [*_weight_files(folder), folder / "config.json", _extractor_file(folder)]
    joined = "\n".join(f"{file.name}:{file_hash(file)}" for file in files)
    return hashlib.sha256(joined.encode()).hexdigest()


def _weight_files(folder: Path) -> list[Path]:
    """The folder's weight files (``WEIGHT_FILES``), sorted."""
    return sorted(file for pattern in WEIGHT_FILES for file in folder.glob(pattern))
