"""Degraded copies of a corpus's test clips: the queries of the ``degraded_copy`` task.

Each copy goes through a chain a recording might meet on its way to a listener: a small
speed change (pitch and tempo move together, as on a mistuned tape), a low-pass filter (a
cheap speaker or microphone), white noise, a gain change, and a lossy Ogg Vorbis re-encode
at a low bitrate. An embedding that finds the original from the copy is robust to all of
that at once.

The parameters of a clip come from a generator seeded by the corpus seed and the clip id
(``musicssl.files.clip_rng``), so a copy is the same whatever order or process makes it. Every
``.ogg`` carries its parameters (and the digest of its source) as a Vorbis comment: a rerun
reuses a copy only when the comment matches and the file decodes in full, and
``degradations.jsonl`` lists the parameters of every copy.

The copies are test audio: they live beside the corpus's ``audio/`` folder
(``corpus/degraded/``), never inside it, so indexing that folder for pretraining cannot pick
them up. A corpus that cannot be written to gets its copies in the evaluation cache instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

from musicssl import audio
from musicssl.errors import MusicSSLError
from musicssl.files import atomic_path, clip_rng, write_text
from musicssl.manifest import read_manifest
from musicssl.progress import bar as progress_bar

FOLDER = "degraded"  # beside the corpus's audio folder
AUDIO = "audio"
LOG = "degradations.jsonl"
# Bump when the chain or its ranges change: copies made by another version are rebuilt.
VERSION = 1
SEMITONES = (-0.5, 0.5)
CUTOFF_HZ = (2500.0, 6000.0)
SNR_DB = (15.0, 30.0)
GAIN_DB = (-6.0, 3.0)
# soundfile's compression_level for Vorbis: 0 is the best quality, 1 the smallest file
# (about 26 kbit/s for 16 kHz mono).
QUALITY = (0.75, 1.0)
# Peak after gain: the codec overshoots the input's peak a little, so leave 1 dB.
CEILING = 10.0 ** (-1.0 / 20.0)
FILTER_ORDER = 4  # applied forwards and backwards: 8th-order magnitude, no delay


@dataclass(frozen=True)
class Degradation:
    """The parameters of one degraded copy.

    Attributes:
        semitones: speed change expressed as the pitch shift it causes.
        cutoff_hz: low-pass cut-off frequency.
        snr_db: level of the clip over the added white noise.
        gain_db: gain applied; lower than drawn when the drawn gain would clip.
        quality: soundfile ``compression_level`` of the Vorbis encode (higher is worse).
    """

    semitones: float
    cutoff_hz: float
    snr_db: float
    gain_db: float
    quality: float


def shift_pitch(audio: np.ndarray, *, sr: int, semitones: float) -> np.ndarray:
    """Play the clip faster or slower by the ratio of ``semitones``, keeping its length.

    A faster copy ends early and is padded with silence; a slower one is cut.

    Args:
        audio: Shape: (num_samples,).

    Returns:
        Shape: (num_samples,), float32.
    """
    ratio = 2.0 ** (semitones / 12.0)
    # Resampled as if recorded at sr * ratio and played at sr: every frequency times ratio.
    shifted = soxr.resample(audio.astype(np.float32), sr * ratio, sr)
    out = np.zeros(audio.shape[-1], dtype=np.float32)
    length = min(len(shifted), len(out))
    out[:length] = shifted[:length]
    return out


def low_pass(audio: np.ndarray, *, sr: int, cutoff_hz: float) -> np.ndarray:
    """Zero-phase Butterworth low-pass. Shape: (num_samples,) -> (num_samples,), float32."""
    sos = signal.butter(FILTER_ORDER, cutoff_hz, btype="lowpass", fs=sr, output="sos")
    return signal.sosfiltfilt(sos, audio).astype(np.float32)


def add_noise(audio: np.ndarray, *, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise ``snr_db`` below the clip's mean power.

    Shape: (num_samples,) -> (num_samples,), float32.
    """
    power = float(np.mean(np.square(audio, dtype=np.float64)))
    noise = rng.standard_normal(audio.shape[-1]) * np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return (audio + noise).astype(np.float32)


def apply_gain(audio: np.ndarray, *, gain_db: float) -> tuple[np.ndarray, float]:
    """Scale by ``gain_db``, lowered where needed to keep the peak under ``CEILING``.

    Returns:
        The scaled audio, Shape: (num_samples,), float32, and the gain applied in dB.
    """
    peak = float(np.max(np.abs(audio), initial=0.0))
    if peak > 0:
        gain_db = min(gain_db, 20.0 * np.log10(CEILING / peak))
    return (audio * 10.0 ** (gain_db / 20.0)).astype(np.float32), float(gain_db)


def degrade(
    audio: np.ndarray, sr: int, *, rng: np.random.Generator
) -> tuple[np.ndarray, Degradation]:
    """Draw a degradation from ``rng`` and apply all of it but the lossy encode.

    Args:
        audio: mono clip. Shape: (num_samples,).
        sr: its sample rate in Hz.
        rng: source of the parameters and the noise.

    Returns:
        The degraded clip, Shape: (num_samples,), float32, and its parameters; encode it
        with ``write_ogg(..., quality=params.quality)`` to finish the chain.
    """
    if audio.ndim != 1:
        raise MusicSSLError(
            f"degrade expects mono audio of shape (num_samples,), got {audio.shape}"
        )
    semitones = rng.uniform(*SEMITONES)
    # The cut-off stays below Nyquist whatever the rate.
    cutoff_hz = min(rng.uniform(*CUTOFF_HZ), 0.45 * sr)
    snr_db = rng.uniform(*SNR_DB)
    gain_db = rng.uniform(*GAIN_DB)
    quality = rng.uniform(*QUALITY)
    out = shift_pitch(audio, sr=sr, semitones=semitones)
    out = low_pass(out, sr=sr, cutoff_hz=cutoff_hz)
    out = add_noise(out, snr_db=snr_db, rng=rng)
    out, gain_db = apply_gain(out, gain_db=gain_db)
    params = Degradation(
        semitones=round(float(semitones), 4),
        cutoff_hz=round(float(cutoff_hz), 1),
        snr_db=round(float(snr_db), 2),
        gain_db=round(gain_db, 2),
        quality=round(float(quality), 3),
    )
    return out, params


def write_ogg(path: Path, audio: np.ndarray, *, sr: int, quality: float, comment: str) -> None:
    """Encode mono audio as Ogg Vorbis, whole or not at all (``musicssl.files.atomic_path``).

    Args:
        path: destination ``.ogg``.
        audio: Shape: (num_samples,), float in [-1, 1].
        sr: sample rate in Hz.
        quality: soundfile ``compression_level``, 0 (best) to 1 (smallest).
        comment: stored as the file's Vorbis comment.
    """
    with (
        atomic_path(path) as temporary,
        sf.SoundFile(
            str(temporary),
            "w",
            sr,
            1,
            format="OGG",
            subtype="VORBIS",
            compression_level=quality,
        ) as handle,
    ):
        handle.comment = comment
        handle.write(audio)


def copies_folder(corpus_dir: str | Path, *, cache: str | Path | None = None) -> Path:
    """Where the degraded copies of a corpus go: ``corpus_dir/degraded``, beside ``audio/``.

    When that folder cannot be written (a read-only corpus), a folder of ``cache`` named after
    the corpus's absolute path takes its place.

    Raises:
        MusicSSLError: neither can be written (or the corpus cannot and no cache is given).
    """
    corpus_dir = Path(corpus_dir)
    preferred = corpus_dir / FOLDER
    _warn_old_copies(corpus_dir)
    if _can_write(preferred):
        return preferred
    if cache is not None:
        corpus_id = hashlib.sha256(str(corpus_dir.resolve()).encode()).hexdigest()[:16]
        fallback = Path(cache) / FOLDER / corpus_id
        if _can_write(fallback):
            return fallback
    raise MusicSSLError(
        f"{preferred}: cannot write the degraded copies of the test clips there"
        + (f" nor in {cache}" if cache is not None else "")
        + "; give a writable --cache or leave degraded_copy out of --tasks"
    )


def degrade_corpus(
    corpus_dir: str | Path,
    *,
    out: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[str]:
    """Write a degraded copy of every test clip of a corpus; reuse copies already made.

    Copies go to ``out/<clip_id>.ogg`` and their parameters to ``out/degradations.jsonl``. A
    copy is remade when it is missing, does not decode in full, or was made from another seed,
    another version of the chain or a different source file.

    Args:
        corpus_dir: folder of ``manifest.jsonl`` (rows with ``clip_id``, ``path``, ``split``).
        out: folder of the copies; ``corpus_dir/degraded`` by default. It must not be inside
            ``corpus_dir/audio``, which is indexed for pretraining.
        seed: with the clip id, fixes every parameter and the noise.
        progress: show a progress bar.

    Returns:
        The copies' names relative to ``corpus_dir/audio`` (``"../degraded/<clip_id>.ogg"`` by
        default), in manifest order.

    Raises:
        MusicSSLError: no manifest, rows without the fields above, no test clip, ``out``
            inside the audio folder, or ``out`` cannot be written.
        AudioError: a test clip cannot be decoded.
    """
    corpus_dir = Path(corpus_dir)
    folder = Path(out) if out is not None else corpus_dir / FOLDER
    audio_dir = corpus_dir / AUDIO
    if folder.resolve().is_relative_to(audio_dir.resolve()):
        raise MusicSSLError(
            f"{folder}: degraded copies must not go inside the audio folder {audio_dir} "
            "(indexing it for pretraining would pick up test audio)"
        )
    manifest = corpus_dir / "manifest.jsonl"
    rows = read_manifest(manifest)
    jobs = []
    for number, row in enumerate(rows, start=1):
        if "split" not in row or "clip_id" not in row:
            raise MusicSSLError(f"{manifest}:{number}: a row needs 'split' and 'clip_id'")
        if row["split"] == "test":
            target = folder / f"{row['clip_id']}.ogg"
            jobs.append((row["abspath"], str(target), row["clip_id"], seed))
    if not jobs:
        raise MusicSSLError(f"{manifest}: no clip has split 'test'; nothing to degrade")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_orphans(folder)
        # One process: the Vorbis encode is most of the ~70 ms a clip takes, and two workers
        # on a shared 2-core machine measured slower than one.
        records = [
            _degrade_file(job)
            for job in progress_bar(
                jobs, desc="degrading test clips", unit="clip", disable=not progress
            )
        ]
        write_text(folder / LOG, "".join(json.dumps(record) + "\n" for record in records))
    except OSError as error:
        raise MusicSSLError(
            f"{folder}: cannot write the degraded copies ({error.strerror or error})"
        ) from None
    relative = os.path.relpath(folder, audio_dir)
    return [Path(relative, f"{clip_id}.ogg").as_posix() for _, _, clip_id, _ in jobs]


def _degrade_file(job: tuple[str, str, str, int]) -> dict[str, Any]:
    """Make (or reuse) one copy; returns its row of ``degradations.jsonl``."""
    source, target, clip_id, seed = job
    stamp = {"version": VERSION, "seed": seed, "clip_id": clip_id, "source_sha1": _sha1(source)}
    reused = _finished(Path(target), stamp)
    if reused is not None:
        return reused
    sr = audio.info(source).sr
    clip = audio.load(source, sr=sr)
    degraded, params = degrade(clip, sr, rng=clip_rng(seed, clip_id))
    record = {**stamp, "name": f"{clip_id}.ogg", "frames": len(clip), **asdict(params)}
    write_ogg(Path(target), degraded, sr=sr, quality=params.quality, comment=json.dumps(record))
    return record


def _can_write(folder: Path) -> bool:
    """Whether a file can be made in ``folder`` (made when missing); tried, not guessed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def _warn_old_copies(corpus_dir: Path) -> None:
    """Older versions wrote the copies inside the audio folder: say so once, delete nothing."""
    old = corpus_dir / AUDIO / FOLDER / LOG
    if old.is_file():
        print(
            f"note: {old.parent} holds degraded test copies from an older musicssl; delete "
            "that folder so that indexing the audio folder cannot pick them up",
            file=sys.stderr,
        )


def _finished(path: Path, stamp: dict[str, Any]) -> dict[str, Any] | None:
    """The record of a finished copy made with ``stamp``, or None if it must be remade."""
    if not path.is_file():
        return None
    try:
        with sf.SoundFile(str(path)) as handle:
            record = json.loads(handle.comment)
            decoded = len(handle.read(dtype="float32"))
    except (sf.LibsndfileError, RuntimeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or any(record.get(k) != v for k, v in stamp.items()):
        return None
    return record if decoded == record.get("frames") else None


def _remove_orphans(folder: Path) -> None:
    """Delete temporary files left by writers that died (their pid is gone)."""
    for temporary in folder.glob(".partial-*"):
        try:
            pid = int(temporary.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if not _alive(pid):
            temporary.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sha1(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha1(handle.read()).hexdigest()
