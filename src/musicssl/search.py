"""Search a folder of clip embeddings by text or by audio, with faiss.

``build_index(EMB.npz, out=INDEX)`` writes an index folder of ours::

    index.json      {"format", "count", "dim", "metric": "cosine", "embeddings", "encoder"}
    names.json      the clip names, in row order
    vectors.npy     the embeddings as given (float32), which a text query projects
    index.faiss     an exact inner-product index over the L2-normalised rows

An audio query is embedded by a run's encoder and compared with the rows by cosine. A text
query needs a run with a text tower (CLAP, SLAP): the caption and the rows are both mapped
into the run's joint space (``text_side``), and compared there. ``encoder`` is which weights
embedded the rows (``Model.fingerprint``, null for embeddings from elsewhere); a query through
other weights is refused, since its vector lives in another space.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicssl.errors import MusicSSLError
from musicssl.files import atomic_path, write_text

INDEX_FORMAT = 1
_FILES = ("index.json", "names.json", "vectors.npy", "index.faiss")


@dataclass
class Index:
    """Clip names and their embeddings, with a faiss index over the normalised rows."""

    names: list[str]
    vectors: np.ndarray  # Shape: (count, dim), as given
    faiss_index: Any
    encoder: str | None = None  # which weights embedded the rows (Model.fingerprint)

    def search(self, queries: np.ndarray, *, k: int = 10) -> list[list[tuple[str, float]]]:
        """The ``k`` rows nearest each query by cosine, best first, as (name, score).

        Args:
            queries: in the rows' space. Shape: (num_queries, dim) or (dim,).
        """
        return _search(self.faiss_index, self.names, queries, k=k)


def build_index(embeddings: str | os.PathLike, *, out: str | os.PathLike) -> dict[str, Any]:
    """Index the clip embeddings of an ``.npz`` (``names``, ``emb``) into the folder ``out``.

    Raises:
        MusicSSLError: an unreadable or malformed ``.npz``, or an ``out`` that exists and is
            neither empty nor an index of ours (it is never overwritten then).
    """
    from musicssl.evaluate.sources import read_npz

    folder = Path(out)
    _check_out(folder)
    arrays = read_npz(Path(embeddings)).arrays
    names = [str(name) for name in arrays["names"].tolist()]
    vectors = np.ascontiguousarray(arrays["emb"], dtype=np.float32)
    if not len(names) or not np.isfinite(vectors).all():
        raise MusicSSLError(f"{embeddings}: no rows, or rows that are not finite, to index")
    folder.mkdir(parents=True, exist_ok=True)
    import faiss

    with atomic_path(folder / "vectors.npy") as temporary, open(temporary, "wb") as handle:
        np.save(handle, vectors)
    with atomic_path(folder / "index.faiss") as temporary:
        faiss.write_index(_flat_index(vectors), str(temporary))
    write_text(folder / "names.json", json.dumps(names))
    about = {
        "format": INDEX_FORMAT,
        "count": len(names),
        "dim": int(vectors.shape[1]),
        "metric": "cosine",
        "embeddings": str(embeddings),
        "encoder": str(arrays.get("encoder", "")) or None,
    }  # "": no checkpoint; fmt: skip
    write_text(folder / "index.json", json.dumps(about, indent=2) + "\n")  # written last
    return about


def load_index(folder: str | os.PathLike) -> Index:
    """Read an index folder written by ``build_index``.

    Raises:
        MusicSSLError: the folder is not one, or its files disagree.
    """
    import faiss

    folder = Path(folder)
    if not _is_index(folder):
        raise MusicSSLError(f"{folder}: not an index folder (make one with `musicssl index`)")
    try:
        about = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        names = json.loads((folder / "names.json").read_text(encoding="utf-8"))
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        faiss_index = faiss.read_index(str(folder / "index.faiss"))
    except (OSError, ValueError, RuntimeError) as error:
        raise MusicSSLError(f"{folder}: damaged index ({error})") from None
    if not (len(names) == len(vectors) == faiss_index.ntotal):
        raise MusicSSLError(f"{folder}: damaged index (names, vectors and index disagree)")
    encoder = about.get("encoder") if isinstance(about, dict) else None
    return Index([str(name) for name in names], vectors, faiss_index, encoder)


def _check_same_run(index: Index, model: Any) -> None:
    """Refuse a model whose vectors live in another space than the index's rows."""
    if index.vectors.shape[1] != model.embedding_dim:
        raise MusicSSLError(
            f"the index holds {index.vectors.shape[1]}-d vectors and the run embeds "
            f"{model.embedding_dim}-d ones: index the embeddings of the same run"
        )
    fingerprint = getattr(model, "fingerprint", None)
    if index.encoder is not None and fingerprint is not None and index.encoder != fingerprint:
        raise MusicSSLError(
            f"the index holds embeddings of other weights (encoder {index.encoder[:12]}, this "
            f"run {fingerprint[:12]}): search with the run (and checkpoint) that embedded them"
        )


def search_text(
    index: Index, model: Any, text: str, *, k: int = 10, batch_size: int = 1024
) -> list[tuple[str, float]]:
    """The ``k`` clips nearest a caption in the joint space of ``model`` (``musicssl.load``).

    The rows are the run's clip embeddings (``musicssl embed`` with the same run); they go
    through its audio projection, the caption through its text tower.

    Raises:
        MusicSSLError: the run has no text tower, the rows are not its embeddings, or
            ``text`` holds no word.
    """
    if not isinstance(text, str):
        raise MusicSSLError(f"search: the text must be a string, got {type(text).__name__}")
    if not any(character.isalnum() for character in text):
        raise MusicSSLError(
            f"the text {text!r} holds no word: describe the music to find (e.g. 'a string quartet')"
        )
    query = model.embed_text([text])  # before the rows: a run with no text tower says so
    _check_same_run(index, model)
    joint = np.concatenate(
        [
            model.project_audio(index.vectors[start : start + batch_size])
            for start in range(0, len(index.vectors), batch_size)
        ]
    )
    return _search(_flat_index(joint), index.names, query, k=k)[0]


def search_audio(index: Index, model: Any, path: str | os.PathLike, *, k: int = 10):
    """The ``k`` clips nearest an audio file embedded by ``model`` (``musicssl.load``)."""
    from musicssl import audio
    from musicssl.decoder_notes import decoder_notes

    _check_same_run(index, model)
    if not isinstance(path, (str, os.PathLike)):
        raise MusicSSLError(
            "search_audio: give the path of an audio file (for audio in memory: "
            "index.search(model.embed(signal, sr).clip))"
        )
    with decoder_notes():  # mpg123's notes on an MP3's tags; a bad file still says why
        signal = audio.load(path, sr=model.sample_rate)
    if signal.size == 0:
        raise MusicSSLError(f"{path}: no audio in it (an empty file)")
    clip = model.embed(signal, model.sample_rate).clip
    return index.search(clip, k=k)[0]


def has_text_tower(checkpoint_path: str | os.PathLike) -> bool:
    """Whether a checkpoint's (or run's latest) method holds a text tower; reads no weights."""
    from safetensors import SafetensorError, safe_open

    from musicssl import checkpoint

    weights = checkpoint.checkpoint_folder(checkpoint_path) / "method.safetensors"
    if not weights.is_file():
        return False
    try:
        with safe_open(str(weights), framework="pt") as handle:
            return any(key.startswith("text_encoder.") for key in handle.keys())
    except (OSError, RuntimeError, SafetensorError) as error:
        raise MusicSSLError(f"{weights}: cannot read the weights ({error})") from None


def text_side(checkpoint_path: str | os.PathLike, *, device: Any = "cpu") -> Any:
    """The trained method of a checkpoint with a text tower, rebuilt from its recipe.

    It offers ``embed_text(texts)`` and ``project_audio(embeddings)`` (see
    ``methods.clap.CLAP``). The scratch tokenizer comes back from the weights; a Hugging Face
    text tower needs its model folder again (for its config and tokenizer).

    Raises:
        MusicSSLError: no text tower, or weights that do not fit the recipe.
    """
    import torch
    from safetensors.torch import load_file

    from musicssl import checkpoint
    from musicssl.encoders import build_encoder
    from musicssl.methods import build_method
    from musicssl.recipe import Recipe

    folder = checkpoint.checkpoint_folder(checkpoint_path)
    if not has_text_tower(folder):
        raise MusicSSLError(f"{checkpoint_path}: the run has no text tower (train CLAP or SLAP)")
    recipe = Recipe.load(folder / "recipe.yaml")
    spec = checkpoint.encoder_spec(folder)
    options = dict(recipe.method.options)
    if options.get("text_encoder", "scratch") == "scratch":
        # The trained tokenizer comes back from the weights: the captions it was learnt from
        # need not be here any more.
        options["text_options"] = {**(options.get("text_options") or {}),
                                   "tokenizer_corpus": "builtin"}  # fmt: skip
    torch.manual_seed(0)  # the weights are overwritten; this only makes building repeatable
    method = build_method(
        recipe.method.name, build_encoder(spec["name"], **spec["options"]), **options
    )
    try:
        method.load_state_dict(load_file(folder / "method.safetensors"))
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise MusicSSLError(f"{folder}: method weights do not fit its recipe ({first})") from None
    return method.eval().to(device)


def _search(
    faiss_index: Any, names: list[str], queries: np.ndarray, *, k: int
) -> list[list[tuple[str, float]]]:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise MusicSSLError(f"search: k must be a whole number >= 1, got {k!r}")
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if queries.ndim != 2 or queries.shape[1] != faiss_index.d:
        raise MusicSSLError(
            f"search: queries of shape {queries.shape} for rows of {faiss_index.d} dimensions "
            "(a query must be in the rows' space: the same run's clip embedding)"
        )
    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    scores, rows = faiss_index.search(np.ascontiguousarray(queries), min(k, len(names)))
    return [
        [(names[row], float(score)) for row, score in zip(found, values) if row >= 0]
        for found, values in zip(rows, scores)
    ]


def _flat_index(vectors: np.ndarray) -> Any:
    import faiss

    rows = np.ascontiguousarray(vectors, dtype=np.float32)
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexFlatIP(rows.shape[1])
    index.add(rows)
    return index


def _is_index(folder: Path) -> bool:
    try:
        about = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(about, dict) and about.get("format") == INDEX_FORMAT


def _check_out(folder: Path) -> None:
    """Refuse an ``out`` that is a file, or a folder holding anything but an index of ours."""
    if folder.exists() and not folder.is_dir():
        raise MusicSSLError(f"{folder}: exists and is not a folder; --out names a folder")
    if folder.is_dir() and any(folder.iterdir()):
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in _FILES)
        if foreign or not _is_index(folder):
            raise MusicSSLError(
                f"{folder}: holds files that are not an index of ours; choose a new or empty --out"
            )
