"""What gives embeddings to evaluate: a checkpoint, a Hugging Face model, an ``.npz`` from any
system, or a baseline.

``open_source`` turns the command line's SOURCE into a ``Source``: a model to embed audio with
(a checkpoint's encoder, or a baseline), or the ready arrays of an ``.npz``. A source also
carries its identity, what makes its embeddings what they are, which keys the caches.
"""

from __future__ import annotations

import os
import posixpath
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from musicssl import checkpoint
from musicssl.embed import DEFAULT_READOUT
from musicssl.errors import MusicSSLError
from musicssl.files import file_hash
from musicssl.huggingface import HuggingFaceModel, is_huggingface

if TYPE_CHECKING:
    from musicssl.embed import Model
    from musicssl.evaluate.baselines import FeatureBaseline
    from musicssl.evaluate.tempogram import TempogramBaseline

BASELINE_PREFIX = "baseline:"


@dataclass
class Embedded:
    """The embeddings of audio files named relative to one root.

    Attributes:
        arrays: an embeddings ``.npz``'s arrays: ``names`` and ``emb`` (N x D); ``layer_K``
            (N x C_K) with layers; ``frame_names``, ``frames``, ``frame_times`` and
            ``frame_offsets`` with frame tracks, ``frames_layer_K`` (rows as ``frames``)
            with both (see the README's Formats).
        skipped: files that could not be embedded, as "name: reason".
    """

    arrays: dict[str, np.ndarray]
    skipped: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [str(name) for name in self.arrays["names"].tolist()]

    def vectors(self, key: str = "emb") -> dict[str, np.ndarray]:
        """One row of array ``key`` per name (``emb``, or a layer's ``layer_K``)."""
        return dict(zip(self.names, self.arrays[key]))

    def rooted(self, root: str | os.PathLike, wanted: Iterable[str]) -> Embedded:
        """These embeddings with names relative to ``root``, for an ``.npz`` whose names are
        relative to a folder above it (``audio/a.wav`` from the corpus folder, for ``a.wav``
        under ``corpus/audio``) or absolute: of those ways to read the names, the one that
        finds the most of the ``wanted`` names (its files) is kept. Names are read tidied
        (``./a.wav`` as ``a.wav``; an absolute one through links as the file it reaches), and
        with ``\\`` as ``/`` where that finds more (an ``.npz`` made on Windows)."""
        wanted = set(wanted)
        readings = [(_reading(self.names, wanted, root, slashed), slashed) for slashed in (0, 1)]
        (best, found), slashed = max(readings, key=lambda reading: reading[0][1])

        def moved(name: str) -> str:
            name = _tidy(name.replace("\\", "/") if slashed else name)
            if name.startswith(best):
                return name[len(best) :]
            if posixpath.isabs(name) != posixpath.isabs(best):
                return name  # absolute and relative do not mix: it names no file of root
            return posixpath.relpath(name, best)  # e.g. ../transfer/a.wav beside audio/

        if not best and not slashed and all(_tidy(name) == name for name in self.names):
            return self
        arrays = dict(self.arrays)
        for key in ("names", "frame_names"):
            if key in arrays:
                arrays[key] = np.array([moved(str(n)) for n in arrays[key].tolist()], dtype=str)
        return Embedded(arrays, self.skipped)

    @property
    def layer_keys(self) -> list[str]:
        """The ``layer_K`` arrays, in layer order."""
        keys = [key for key in self.arrays if key.startswith("layer_")]
        return sorted(keys, key=lambda key: int(key.removeprefix("layer_")))

    @property
    def frame_layer_keys(self) -> list[str]:
        """The ``frames_layer_K`` arrays, in layer order."""
        keys = [key for key in self.arrays if key.startswith("frames_layer_")]
        return sorted(keys, key=lambda key: int(key.removeprefix("frames_layer_")))

    def frames(self, key: str = "frames") -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per name, (frame features (num_frames, dim), frame times (num_frames,)) of array
        ``key`` (``frames``, or a layer's ``frames_layer_K``); {} if none."""
        arrays = self.arrays
        if key not in arrays or "frame_offsets" not in arrays:
            return {}
        names = arrays.get("frame_names", arrays["names"]).tolist()
        offsets = arrays["frame_offsets"]
        return {
            str(name): (
                arrays[key][offsets[i] : offsets[i + 1]],
                arrays["frame_times"][offsets[i] : offsets[i + 1]],
            )
            for i, name in enumerate(names)
        }


def _reading(
    names: list[str], wanted: set[str], root: str | os.PathLike, slashed: int
) -> tuple[str, int]:
    """The prefix to strip from ``names`` (read with ``\\`` as ``/`` if ``slashed``) that
    finds the most ``wanted`` names under ``root``, and how many it finds."""
    tidied = [_tidy(name.replace("\\", "/") if slashed else name) for name in names]
    best, found = "", sum(name in wanted for name in tidied)
    for prefix in _prefixes(Path(root)):
        hits = sum(name.startswith(prefix) and name[len(prefix) :] in wanted for name in tidied)
        if hits > found:
            best, found = prefix, hits
    return best, found


def _tidy(name: str) -> str:
    """A name as plainly written: ``./a.wav`` and ``b/../a.wav`` as ``a.wav``; an absolute one
    as the file it reaches, through links."""
    return os.path.realpath(name) if posixpath.isabs(name) else posixpath.normpath(name)


def _prefixes(root: Path) -> list[str]:
    """How a name may begin when it is relative to a folder above ``root`` or absolute."""
    prefixes = []
    for absolute in (root.absolute(), root.resolve()):
        prefixes += [absolute.relative_to(above).as_posix() + "/" for above in absolute.parents]
        prefixes.append(absolute.as_posix() + "/")
    return [prefix for prefix in dict.fromkeys(prefixes) if prefix not in ("./", "/")]


@dataclass
class Source:
    """Something that gives embeddings.

    Attributes:
        label: how reports name it (the path as given, ``hf:FOLDER`` or ``baseline:NAME``).
        model: a ``musicssl.embed.Model`` or a baseline; None for an ``.npz``.
        embedded: the ``.npz``'s embeddings; None for a model.
        identity: what makes its embeddings what they are (for cache keys).
        checkpoint: the checkpoint folder a run or checkpoint was read from, else None.
        model_line: for ``hf:FOLDER``, the model in one line (kind, size, input, weights).
    """

    label: str
    model: Model | FeatureBaseline | TempogramBaseline | None = None
    embedded: Embedded | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    model_line: str | None = None

    @property
    def is_baseline(self) -> bool:
        return self.label.startswith(BASELINE_PREFIX)

    @property
    def is_checkpoint(self) -> bool:
        """A run or checkpoint of this toolkit: what it trained on is known."""
        return self.checkpoint is not None

    @property
    def is_encoder(self) -> bool:
        """An encoder to probe beyond its embeddings: a checkpoint or ``hf:FOLDER``."""
        return self.model is not None and not self.is_baseline


def open_source(
    spec: str,
    *,
    reference: str | os.PathLike | None = None,
    device: str = "cpu",
    readout: str = DEFAULT_READOUT,
) -> Source:
    """Open a checkpoint, a run folder, ``hf:FOLDER``, an ``.npz`` or ``baseline:NAME``.

    Args:
        spec: what to evaluate.
        reference: for ``baseline:random``, the checkpoint (or ``hf:FOLDER``) whose
            architecture to use.
        device: where a model embeds.
        readout: the layers' read-out of an encoder (``musicssl.embed.Model``).

    Raises:
        MusicSSLError: the source cannot be read, or is none of the above.
    """
    if spec.startswith(BASELINE_PREFIX):
        from musicssl.evaluate.baselines import build_baseline

        name = spec.removeprefix(BASELINE_PREFIX)
        model = build_baseline(name, reference=reference, device=device, readout=readout)
        line = None
        if name == "random":  # whose random weights: a report of them alone says so
            config = model.config()
            kind = config["encoder"]["name"]
            what = "the demo's encoder" if reference is None else f"the architecture of {reference}"
            line = f"random weights (seed {config['seed']}) of {what} ({kind})"
        return Source(spec, model=model, identity={"baseline": model.config()}, model_line=line)
    if is_huggingface(spec):
        from musicssl.embed import load

        loaded = load(spec, device=device, readout=readout)
        outside = loaded.encoder
        assert isinstance(outside, HuggingFaceModel)
        return Source(
            spec,
            model=loaded,
            identity=outside.identity(),
            model_line=outside.describe(),
        )  # the read-out changes nothing here; fmt: skip
    path = Path(spec)
    if path.suffix == ".npz":
        return Source(spec, embedded=read_npz(path), identity={"npz": file_hash(path)})
    from musicssl.embed import load

    identity: dict[str, Any] = {
        "weights": file_hash(checkpoint.encoder_weights(path)),
        "encoder": checkpoint.encoder_spec(path),
    }
    if readout != "mean":  # the mean read-out keeps the cache keys it always had
        identity["readout"] = readout
    folder = str(checkpoint.checkpoint_folder(path))
    encoder = load(path, device=device, readout=readout)
    return Source(spec, model=encoder, identity=identity, checkpoint=folder)


def _unreadable(path: Path, error: Exception) -> MusicSSLError:
    """An empty or cut-off file, in numpy's or zipfile's own words (their first line)."""
    reason = (str(error) or type(error).__name__).splitlines()[0].split(". ")[0]
    return MusicSSLError(f"{path}: not a readable .npz, empty or truncated? ({reason})")


def read_npz(path: Path) -> Embedded:
    """The embeddings of an ``.npz`` with ``names`` and ``emb`` (N x D), checked."""
    if not path.is_file():
        raise MusicSSLError(f"{path}: no such embeddings file")
    if not zipfile.is_zipfile(path):  # numpy would read another file as a pickle, and say so
        raise MusicSSLError(
            f"{path}: not an .npz (numpy's zip of arrays): empty, cut off or another kind of file"
        )
    key = None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {}
            for key in data.files:
                arrays[key] = data[key]
    except ValueError as error:
        if key is not None and "Object arrays" in str(error):  # e.g. a list of str objects
            raise MusicSSLError(
                f"{path}: '{key}' is an array of Python objects, which is not loaded (unpickling "
                f"can run code); save it as a plain array, e.g. np.array(names, dtype=str)"
            ) from None
        raise _unreadable(path, error) from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise _unreadable(path, error) from None
    for key in ("names", "emb"):
        if key not in arrays:
            raise MusicSSLError(f"{path}: an embeddings .npz needs '{key}' (has {sorted(arrays)})")
    for key in ("names", "frame_names"):  # names saved as bytes (numpy's "S" arrays) as text
        if key in arrays and arrays[key].dtype.kind == "S":
            try:
                arrays[key] = np.char.decode(arrays[key], "utf-8")
            except UnicodeDecodeError:
                raise MusicSSLError(
                    f"{path}: '{key}' holds bytes that are not UTF-8 text"
                ) from None
    emb, names = arrays["emb"], arrays["names"]
    if emb.ndim != 2 or len(emb) != len(names) or emb.shape[1] == 0:
        raise MusicSSLError(
            f"{path}: 'emb' must be (len(names), dim) with dim >= 1; got {emb.shape} "
            f"for {len(names)} names"
        )
    if emb.dtype.kind in "fc" and not np.isfinite(emb).all():
        row = int(np.flatnonzero(~np.isfinite(emb).all(axis=1))[0])
        raise MusicSSLError(f"{path}: 'emb' of {names[row]} holds NaN or infinite values")
    counts = Counter(names.tolist())
    twice = [name for name, count in counts.items() if count > 1]
    if twice:
        raise MusicSSLError(f"{path}: {twice[0]} is named {counts[twice[0]]} times in 'names'")
    return Embedded(arrays)
