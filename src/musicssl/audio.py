"""Decode, resample, downmix and crop audio. Nothing else in musicssl opens sound files.

Every function takes the sample rate explicitly and returns float32 arrays with time on the
last axis. Decoding is by libsndfile (through ``soundfile``: WAV, FLAC, OGG/Vorbis/Opus, MP3,
AIFF, ...), resampling by ``soxr``.
"""

from __future__ import annotations

import errno
import hashlib
import numbers
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from musicssl.errors import AudioError, MusicSSLError
from musicssl.files import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au")
# Sample rates audio is believed at: below, a header is damaged (resampling 1 Hz audio to
# 16 kHz would allocate 16,000 samples per sample); above, no converter writes it.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000

# Blocks of this many frames bound memory when a whole file is scanned.
_BLOCK_FRAMES = 1 << 20

# How each format the decoders read begins: a file with an audio extension that begins
# otherwise is not audio at all, rather than a damaged one.
_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"BW64", b"FORM", b"fLaC", b"OggS", b".snd", b"ID3")


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says, checked against what can be decoded."""

    sr: int
    frames: int
    channels: int
    samples_sha256: str | None = None  # of the decoded samples: ``check`` fills it

    @property
    def duration(self) -> float:
        return self.frames / self.sr


def is_audio_path(path: str | os.PathLike) -> bool:
    """True when the file name has one of ``AUDIO_EXTENSIONS`` (case-insensitive)."""
    return str(path).lower().endswith(AUDIO_EXTENSIONS)


def info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of an audio file.

    Raises:
        AudioError: the file is missing, empty, not audio, or its header cannot be read.
    """
    path = Path(path)
    problem = file_problem(path)
    if problem is not None:
        raise AudioError(path, problem)
    try:
        header = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError(path, _open_failure(path, error)) from None
    if not MIN_SAMPLE_RATE <= header.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(
            path,
            f"header declares {header.samplerate} Hz, not a plausible sample rate "
            f"({MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)",
        )
    return AudioInfo(
        sr=int(header.samplerate), frames=int(header.frames), channels=int(header.channels)
    )


def file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be opened as a file, in words a user understands, or None.

    Follows symbolic links; never opens anything but a regular file (opening a pipe would
    block).
    """
    path = Path(path)
    try:
        found = path.stat()
    except OSError as error:
        return os_error_reason(error, path)
    if stat.S_ISDIR(found.st_mode):
        return "a folder, not a file"
    if not stat.S_ISREG(found.st_mode):
        return "not a regular file (a pipe, socket or device)"
    if found.st_size == 0:
        return "empty file (0 bytes)"
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return "name not UTF-8 (libsndfile and manifests need UTF-8 names): rename the file"
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        return os_error_reason(error, path)
    return None


def os_error_reason(error: OSError, path: str | os.PathLike | None = None) -> str:
    """The reason an ``OSError`` gives, in words: "permission denied", "broken symbolic link"..."""
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    if error.errno == errno.ENOENT:
        if path is not None and os.path.islink(path):
            return f"broken symbolic link (to {os.readlink(os.fspath(path))}, which does not exist)"
        return "no such file"
    if error.errno == errno.EISDIR:
        return "a folder, not a file"
    return (error.strerror or str(error)).lower()


def check(path: str | os.PathLike, *, silence_db: float = -90.0) -> AudioInfo:
    """Decode a whole file block by block and check that it is usable audio.

    Memory is bounded by one block, whatever the file's length.

    Args:
        path: the audio file.
        silence_db: a file whose peak is below this level (dBFS) is reported as silent.

    Returns:
        The file's ``AudioInfo``, with ``frames`` the number of frames actually decoded.

    Raises:
        AudioError: with the reason: empty, truncated, corrupt, not audio, or all silent.
    """
    path = Path(path)
    header = info(path)
    declared = _declared_wav_frames(path)
    if declared is not None and declared > header.frames:
        raise AudioError(
            path, f"truncated: header declares {declared} frames, file holds {header.frames}"
        )
    if header.frames == 0:
        raise AudioError(path, "empty: no audio frames")
    peak = 0.0
    decoded = 0
    digest = hashlib.sha256()
    try:
        for block in _decoded_blocks(path):
            decoded += len(block)
            digest.update(block.tobytes())
            if len(block):
                peak = max(peak, float(np.max(np.abs(block))))
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError(
            path, f"corrupt: decoding failed after {decoded} frames ({_reason(error)})"
        ) from None
    if decoded < header.frames:
        raise AudioError(
            path, f"truncated: header declares {header.frames} frames, decoded {decoded}"
        )
    if not np.isfinite(peak):
        raise AudioError(path, "corrupt: decoded samples are not finite")
    if peak <= 10.0 ** (silence_db / 20.0):
        raise AudioError(path, f"all silent (peak below {silence_db:g} dBFS)")
    return AudioInfo(header.sr, decoded, header.channels, samples_sha256=digest.hexdigest())


def samples_digest(path: str | os.PathLike) -> str:
    """The sha256 of a file's decoded samples, as ``check`` computes it: the same for two
    files that hold the same samples in other lossless formats (a WAV and its FLAC).

    Raises:
        AudioError: the file cannot be decoded.
    """
    digest = hashlib.sha256()
    try:
        for block in _decoded_blocks(Path(path)):
            digest.update(block.tobytes())
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError(path, f"corrupt: {_reason(error)}") from None
    return digest.hexdigest()


def _decoded_blocks(path: Path) -> Iterator[np.ndarray]:
    """The file's samples as float32 blocks, channels interleaved. Shape: (frames, channels)."""
    with sf.SoundFile(str(path)) as handle:
        yield from handle.blocks(blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True)


def load(
    path: str | os.PathLike,
    *,
    sr: int,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Decode a file (or a crop of it) to mono float32 at ``sr``.

    Only the requested crop is decoded where the format can seek (all libsndfile formats).

    Args:
        path: the audio file.
        sr: the sample rate of the result, in Hz.
        offset: start of the crop in seconds, in the file's own time.
        duration: length of the crop in seconds; ``None`` reads to the end.

    Returns:
        Shape: (num_samples,), float32, mono (the mean of the channels).

    Raises:
        AudioError: the file cannot be decoded.
        MusicSSLError: a negative offset or duration, or a non-positive ``sr``.
    """
    whole = isinstance(sr, numbers.Real) and not isinstance(sr, bool) and float(sr).is_integer()
    if not whole or sr <= 0:
        raise MusicSSLError(f"sr must be a positive whole number of Hz, got {sr!r}")
    sr = int(sr)
    if offset < 0 or (duration is not None and duration < 0):
        raise MusicSSLError(f"{path}: offset and duration must be >= 0, got {offset}, {duration}")
    header = info(path)
    start = min(int(round(offset * header.sr)), header.frames)
    wanted = header.frames - start
    if duration is not None:
        wanted = min(wanted, int(round(duration * header.sr)))
    declared = _declared_wav_frames(Path(path))
    if declared is not None and declared > header.frames:
        raise AudioError(
            path, f"truncated: header declares {declared} frames, file holds {header.frames}"
        )
    # Block by block: a header may declare far more frames than the file holds, and reading
    # them in one call would allocate the declared size.
    blocks = []
    decoded = 0
    try:
        with sf.SoundFile(str(path)) as handle:
            if start:
                handle.seek(start)
            while decoded < wanted:
                block = handle.read(min(_BLOCK_FRAMES, wanted - decoded), dtype="float32")
                if len(block) == 0:
                    break
                blocks.append(to_mono(block.T))
                decoded += len(block)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError(path, f"corrupt: {_reason(error)}") from None
    if decoded < wanted:
        raise AudioError(
            path, f"truncated: header declares {header.frames} frames, decoded {start + decoded}"
        )
    mono = blocks[0] if len(blocks) == 1 else np.concatenate([np.zeros(0, np.float32), *blocks])
    return resample(mono, orig_sr=header.sr, target_sr=sr)


def stream(
    path: str | os.PathLike, *, sr: int, block_seconds: float = 30.0
) -> Iterator[np.ndarray]:
    """Decode a file of any length block by block, mono at ``sr``; memory stays one block.

    The blocks, concatenated, equal ``load(path, sr=sr)`` (resampling is streamed, not done
    per block, so block edges leave no trace).

    Yields:
        Shape: (num_samples,), float32; the last block may be shorter.

    Raises:
        AudioError: the file cannot be decoded, or holds fewer frames than its header
            declares (checked from the header before the first block, and against the
            frames read at the end).
    """
    header = info(path)
    declared = _declared_wav_frames(Path(path))
    if declared is not None and declared > header.frames:
        raise AudioError(
            path, f"truncated: header declares {declared} frames, file holds {header.frames}"
        )
    resampler = None if header.sr == sr else soxr.ResampleStream(header.sr, sr, 1, dtype="float32")
    block_frames = max(1, int(block_seconds * header.sr))
    decoded = 0
    try:
        with sf.SoundFile(str(path)) as handle:
            while True:
                block = handle.read(block_frames, dtype="float32", always_2d=True)
                decoded += len(block)
                last = len(block) < block_frames
                if last and decoded < header.frames:
                    # Checked before the last block is yielded: a consumer never holds a
                    # whole signal of a cut-off file.
                    raise AudioError(
                        path,
                        f"truncated: header declares {header.frames} frames, decoded {decoded}",
                    )
                mono = to_mono(block.T)
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=last)
                if len(mono):
                    yield mono
                if last:
                    return
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError(path, f"corrupt: {_reason(error)}") from None


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average the channels. Shape: (channels, num_samples) -> (num_samples,); 1-D passes."""
    if audio.ndim == 1:
        return audio.astype(np.float32, copy=False)
    return audio.mean(axis=0, dtype=np.float32)


def resample(audio: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with soxr (high quality). Shape: (..., num_samples)."""
    if orig_sr == target_sr or audio.shape[-1] == 0:
        return audio.astype(np.float32, copy=False)
    lead = audio.shape[:-1]
    flat = audio.reshape(-1, audio.shape[-1]).T  # (num_samples, channels): soxr's layout
    out = soxr.resample(np.ascontiguousarray(flat, dtype=np.float32), orig_sr, target_sr)
    return np.ascontiguousarray(out.T.reshape(*lead, -1), dtype=np.float32)


def save(path: str | os.PathLike, audio: np.ndarray, *, sr: int, subtype: str = "PCM_16") -> None:
    """Write mono audio whole or not at all (temporary file, then rename).

    Args:
        path: destination; the format follows the extension.
        audio: Shape: (num_samples,), float in [-1, 1].
        sr: sample rate in Hz.
        subtype: libsndfile subtype, e.g. "PCM_16" or "FLOAT".
    """
    # The temporary name keeps the extension: libsndfile picks the format from it.
    with atomic_path(path) as temporary:
        sf.write(str(temporary), audio, sr, subtype=subtype)


def _declared_wav_frames(path: Path) -> int | None:
    """Frames the RIFF/WAVE header of ``path`` declares, or None if not a plain WAV.

    libsndfile silently shortens a truncated WAV to the bytes present, so a cut-off download
    would otherwise pass as a shorter, valid file.
    """
    try:
        with open(path, "rb") as handle:
            riff = handle.read(12)
            if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
                return None
            bytes_per_frame = None
            while True:
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return None
                chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if chunk_id == b"fmt ":
                    # Only the first 16 bytes matter; a malformed size must not make the
                    # read allocate gigabytes.
                    fmt = handle.read(16)
                    if len(fmt) < 14:
                        return None
                    block_align = struct.unpack("<H", fmt[12:14])[0]
                    bytes_per_frame = block_align or None
                    handle.seek(size + (size & 1) - len(fmt), os.SEEK_CUR)
                elif chunk_id == b"data":
                    # 0 and 0xFFFFFFFF mark a stream whose length was never written.
                    if bytes_per_frame is None or size in (0, 0xFFFFFFFF):
                        return None
                    return size // bytes_per_frame
                else:
                    handle.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return None


def _open_failure(path: Path, error: Exception) -> str:
    """The reason a decoder could not open a file: not audio at all, or damaged audio."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as read_error:
        return os_error_reason(read_error, path)
    # MPEG audio frames begin with 11 set bits (a frame sync) when there is no ID3 tag.
    mpeg = len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0
    if not (head.startswith(_MAGIC) or mpeg):
        return "not audio (could not recognise the format)"
    return f"corrupt: {_reason(error)}"


def _reason(error: Exception) -> str:
    text = str(error)
    # libsndfile repeats the path in its message; the caller already names the file.
    if "Error opening" in text and ":" in text:
        text = text.rsplit(":", 1)[-1].strip()
    # Its words for a file its decoders could not parse name the wrong cause (the file exists
    # and is regular: it was opened to read its header).
    if "does not exist or is not a regular file" in text:
        return "the decoder could not parse it"
    return text.rstrip(".")
