"""Cutting a stream of audio blocks into encoder windows, and the frame track they give.

``windows`` turns blocks of any size (a file read piece by piece) into batches of
fixed-length windows without holding the whole signal; ``one_track`` keeps one frame per
time from the overlapping windows' frames; ``finite`` stops at the first NaN sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from musicssl.errors import MusicSSLError


def frame_centres(num_frames: int, *, window: int, hop: int) -> np.ndarray:
    """Where a window's ``num_frames`` frames are centred, in samples from its start: ``hop``
    (the encoder's frame hop) apart, their span centred in the ``window`` (a spectrogram's
    centred frames: the first at 0, the last at the window's end), or the window's equal
    shares where that hop does not fit in it."""
    if num_frames > 1 and (num_frames - 1) * hop <= window:
        return (window - (num_frames - 1) * hop) / 2 + np.arange(num_frames) * hop
    return (np.arange(num_frames) + 0.5) * window / num_frames


def one_track(times: np.ndarray, duration: float) -> np.ndarray:
    """Indices of frames in time order, each later than every frame before it, none past
    ``duration`` (the first frame is always kept)."""
    earlier = np.maximum.accumulate(np.concatenate([[-np.inf], times[:-1]]))
    keep = (times > earlier) & (times <= duration)
    keep[:1] = True
    return np.flatnonzero(keep)


def windows(
    blocks: Iterator[np.ndarray],
    *,
    window: int,
    step: int,
    batch_size: int,
    shortest: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Windows of ``window`` samples every ``step`` over a stream of blocks, in batches.

    A signal shorter than one window gives one zero-padded window: padded to ``window``
    samples, or, with ``shortest`` (an encoder that reads any length from that many), only up
    to ``shortest``. The tail after the last full window gets one more window that ends at the
    signal's last sample (overlapping the one before it), so that no audio is ignored and no
    window holds silence the audio does not: a padded tail would change with the clip's
    length, which a time stretch changes.

    Yields:
        (window start sample indices, Shape: (n,)), (windows, Shape: (n, window); a signal
        shorter than one window, with ``shortest``: (1, its length or ``shortest``)).
    """
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # sample index of buffer[0]
    next_start, last_end, total = 0, 0, 0
    starts: list[int] = []
    batch: list[np.ndarray] = []
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        total += len(block)
        while next_start + window <= total:
            offset = next_start - buffer_start
            starts.append(next_start)
            batch.append(buffer[offset : offset + window])
            last_end = next_start + window
            next_start += step
            if len(batch) == batch_size:
                yield np.asarray(starts), np.stack(batch)
                starts, batch = [], []
        # Keep the last window's worth of samples: the tail window may reach back into them.
        drop = max(0, min(next_start - buffer_start, len(buffer) - window))
        buffer, buffer_start = buffer[drop:], buffer_start + drop
    if last_end < total and next_start < total:
        start = max(0, total - window)
        remainder = buffer[start - buffer_start :]
        tail = np.zeros(window if shortest is None else max(len(remainder), shortest), np.float32)
        tail[: len(remainder)] = remainder
        starts.append(start)
        batch.append(tail)
    if batch:
        yield np.asarray(starts), np.stack(batch)


def finite(blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The blocks unchanged; raises at the first NaN or infinite sample."""
    start = 0
    for block in blocks:
        if not np.isfinite(block).all():
            bad = start + int(np.argmin(np.isfinite(block)))
            raise MusicSSLError(f"the audio holds a NaN or infinite sample (sample {bad})")
        start += len(block)
        yield block
