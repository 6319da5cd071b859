"""Pitch shift with a per-example interval: tempo-preserving (phase vocoder) or tape-style.

Two kinds, chosen by ``kind``:

- ``"preserve_tempo"`` (what sox ``pitch`` does): a phase vocoder that shifts pitch directly in
  the STFT domain by remapping bins, after Laroche & Dolson (1999, "New phase-vocoder
  techniques for pitch-shifting, harmonizing and other exotic effects") but without their
  peak picking. Output bin k copies input bin
  round(k / r), its phase turned so that it advances r times as fast, with
  r = 2^(semitones / 12). Frames and hop are unchanged, so durations are kept and nothing needs
  resampling; each example has its own r, applied by a gather along frequency. The whole batch
  costs one STFT, one inverse STFT and about fifteen elementwise passes.
- ``"tape"``: read the waveform r times as fast, so pitch and tempo move together (a tape or
  turntable running fast or slow). The example is band-limited to the Nyquist rate / r,
  oversampled twice through the FFT and read at times n * r by linear interpolation. The
  length is kept: shifted up, the example ends early and the tail is silent; shifted down, its
  end is cut.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from musicssl.augment.base import (
    Augmentation,
    Params,
    Workspace,
    coin,
    compute_dtype,
    fast_fft_length,
    padded_rfft,
    rms,
    uniform,
)
from musicssl.errors import MusicSSLError

KINDS = ("preserve_tempo", "tape")


def phase_vocoder_pitch_shift(
    x: Tensor,
    ratio: Tensor,
    *,
    n_fft: int,
    hop_length: int,
    workspace: Workspace | None = None,
) -> Tensor:
    """Shift every example's pitch by its own frequency ratio, keeping its duration.

    Output bin k copies input bin j = round(k / r) turned by theta_j(t) = r w_j t + (r - 1)
    D_j(t), where w_j is bin j's nominal phase advance per hop and D_j(t) the deviations from
    it summed since the first frame: the copy then turns r times as fast as the original, i.e.
    sounds at r times its frequency. Each frame is analysed circularly turned so that its
    centre comes first (all bins of one partial's main lobe then share a phase, and a lobe
    stays coherent when bins are duplicated or skipped) and, beyond that, by t hop samples
    back: that cancels every bin's nominal advance, so the deviation is simply
    angle(S[t] conj(S[t-1])), unambiguous over a Hann main lobe for hops up to n_fft / 4.
    Everything runs on separate real and imaginary planes, in place or in reused scratch
    tensors: on CPU the cost is memory traffic, and complex elementwise ops are several times
    slower than real ones.

    Args:
        x: waveforms. Shape: (batch_size, num_samples), num_samples > n_fft // 2.
        ratio: frequency ratios 2^(semitones / 12). Shape: (batch_size,).
        n_fft: STFT size, an even multiple of hop_length.
        hop_length: STFT hop.
        workspace: scratch kept between calls; None allocates afresh.

    Returns:
        Shifted waveforms, each at its input's RMS level. Shape: (batch_size, num_samples).
    """
    batch_size, num_samples = x.shape
    dtype = compute_dtype(x)
    device = x.device
    scratch = workspace or Workspace()

    def buffer(name: str, *shape: int) -> Tensor:
        return scratch.get(name, shape, dtype=dtype, device=device)

    half = n_fft // 2
    overlap = n_fft // hop_length
    num_frames = num_samples // hop_length + 1
    num_bins = half + 1
    window = torch.hann_window(n_fft, device=device, dtype=dtype)

    # Reflect-padded input, framed as a view; frame t windowed and turned circularly so that
    # its sample (half - t hop) mod n_fft comes first, which depends on t mod overlap only.
    padded = buffer("padded", batch_size, num_samples + n_fft)
    padded[:, half : half + num_samples] = x
    padded[:, :half] = x[:, 1 : half + 1].flip(-1)
    padded[:, half + num_samples :] = x[:, -half - 1 : -1].flip(-1)
    frames = padded.unfold(-1, n_fft, hop_length)  # (B, N, n_fft)
    turned = buffer("turned", batch_size, num_frames, n_fft)
    for residue in range(overlap):  # a handful of frame classes, not examples
        shift = (half - residue * hop_length) % n_fft
        source, target = frames[:, residue::overlap], turned[:, residue::overlap]
        torch.mul(source[..., shift:], window[shift:], out=target[..., : n_fft - shift])
        torch.mul(source[..., :shift], window[:shift], out=target[..., n_fft - shift :])
    spec = torch.fft.rfft(turned)  # (B, N, F); out= would only add a copy
    # Planes (B, N, F + 1): frequency last for the gather; the extra bin stays zero and is
    # where outputs whose source lies past Nyquist read from.
    real = buffer("real", batch_size, num_frames, num_bins + 1)
    imag = buffer("imag", batch_size, num_frames, num_bins + 1)
    real[..., :-1] = spec.real
    imag[..., :-1] = spec.imag
    real[..., -1] = 0
    imag[..., -1] = 0
    del spec

    # Deviation of each bin's advance from nominal, angle(S[t] conj(S[t-1])): (B, N-1, F+1).
    real_now, imag_now, real_then, imag_then = real[:, 1:], imag[:, 1:], real[:, :-1], imag[:, :-1]
    shape = (batch_size, num_frames - 1, num_bins + 1)
    first, second = buffer("first", *shape), buffer("second", *shape)
    cross_real = torch.mul(real_now, real_then, out=first).addcmul_(imag_now, imag_then)
    cross_imag = torch.mul(imag_now, real_then, out=second).addcmul_(real_now, imag_then, value=-1)
    deviation = torch.atan2(cross_imag, cross_real, out=first)

    # theta(t) = sum over s = 1..t of (r - 1) deviation(s) + (r w mod 2 pi), the advance
    # reduced in float64 first, so that float32 keeps its precision.
    bins = torch.arange(num_bins + 1, device=device, dtype=torch.float64)
    nominal = (2 * math.pi / overlap) * bins  # (F+1,)
    advance = torch.remainder(ratio.double()[:, None] * nominal, 2 * math.pi).to(dtype)
    ratio = ratio.to(dtype)
    step = torch.addcmul(advance[:, None, :], deviation, (ratio - 1)[:, None, None], out=second)
    theta = torch.cumsum(step, dim=1, out=first)
    cos_theta = torch.cos(theta, out=second)
    sin_theta = theta.sin_()

    # Rotated spectrum, real and imaginary parts interleaved; the first frame is the reference.
    rotated = buffer("rotated", batch_size, num_frames, num_bins + 1, 2)
    rotated[:, 0, :, 0] = real[:, 0]
    rotated[:, 0, :, 1] = imag[:, 0]
    out_real, out_imag = rotated[:, 1:, :, 0], rotated[:, 1:, :, 1]
    torch.mul(real_now, cos_theta, out=out_real).addcmul_(imag_now, sin_theta, value=-1)
    torch.mul(real_now, sin_theta, out=out_imag).addcmul_(imag_now, cos_theta)

    # Output bin k reads input bin round(k / r); past Nyquist, the zero bin. A complex gather:
    # several times faster on CPU than gathering the real and imaginary parts as pairs.
    source = torch.arange(num_bins, device=device, dtype=dtype)[None] / ratio[:, None]
    nearest = source.round().long().clamp(max=num_bins)  # (B, F)
    index = nearest[:, None, :].expand(-1, num_frames, -1)
    shifted = torch.gather(torch.view_as_complex(rotated), 2, index)  # (B, N, F)

    # Inverse STFT. The frames come back centred, so the halves swap back during the windowed
    # overlap-add of the n_fft / hop blocks; the sum is normalised by the summed squared window.
    y = torch.fft.irfft(shifted, n=n_fft)  # (B, N, n_fft)
    blocks = y.view(batch_size, num_frames, overlap, hop_length)
    summed = buffer("summed", batch_size, num_frames + overlap - 1, hop_length).zero_()
    norm = torch.zeros(num_frames + overlap - 1, hop_length, device=device, dtype=dtype)
    window_blocks = window.view(overlap, hop_length)
    for i in range(overlap):  # a handful of block offsets, not examples
        block = blocks[:, :, (i + overlap // 2) % overlap]
        summed[:, i : i + num_frames].addcmul_(block, window_blocks[i])
        norm[i : i + num_frames] += window_blocks[i].square()
    kept = slice(half, half + num_samples)
    out = summed.view(batch_size, -1)[:, kept] / norm.view(-1)[kept].clamp_min(1e-3)  # fresh
    # Remapping bins scales a partial's level by a few per cent, depending on where its lobe
    # falls; matching the input's RMS removes that.
    out *= (rms(x.to(dtype)) / rms(out).clamp_min(1e-12))[:, None]
    return out.to(x.dtype)


def tape_pitch_shift(x: Tensor, ratio: Tensor) -> Tensor:
    """Play every example ``ratio`` times as fast (pitch and tempo together), keeping length.

    Args:
        x: waveforms. Shape: (batch_size, num_samples).
        ratio: speed-up factors 2^(semitones / 12). Shape: (batch_size,).

    Returns:
        Resampled waveforms, zero past the end of the source. Shape: (batch_size, num_samples).
    """
    num_samples = x.shape[-1]
    dtype = compute_dtype(x)
    # Padding keeps the FFT's circular wrap from leaking the start into the end.
    n_fft = 2 * fast_fft_length((num_samples + 65) // 2)
    spectrum = padded_rfft(x, n_fft)  # (B, F)
    ratio = ratio.to(dtype)
    # Reading r times as fast maps frequency f to r f: keep only what stays below Nyquist. The
    # gain of 2 makes up for the inverse transform at twice the length; the Nyquist bin is
    # halved because it becomes a two-sided bin once oversampled.
    freqs = torch.fft.rfftfreq(n_fft, device=x.device, dtype=dtype)  # cycles per sample
    gain = (freqs[None, :] * ratio.clamp_min(1.0)[:, None] <= 0.5).to(dtype).mul_(2)
    gain[:, -1] *= 0.5
    # Twice oversampled through the FFT (zero bins above the old Nyquist), so that linear
    # interpolation loses little treble.
    oversampled = spectrum.new_zeros(x.shape[0], n_fft + 1)
    torch.mul(spectrum, gain, out=oversampled[:, : n_fft // 2 + 1])
    upsampled = torch.fft.irfft(oversampled, n=2 * n_fft)  # (B, 2 n_fft)
    upsampled[:, 2 * num_samples - 1 :] = 0  # silence after the last sample
    position = torch.arange(num_samples, device=x.device, dtype=dtype)[None] * (2 * ratio)[:, None]
    lower = position.floor()
    frac = position.sub_(lower)
    lower = lower.long().clamp_(max=2 * n_fft - 2)
    # The next sample read from a view one sample on: no second index tensor.
    y = torch.lerp(upsampled.gather(1, lower), upsampled[:, 1:].gather(1, lower), frac)
    return y.to(x.dtype)


class PitchShift(Augmentation):
    """Shift each example's pitch by a number of semitones drawn uniformly per example.

    Parameters: ``applied`` and ``semitones`` (float32), each shape (batch_size,). The frequency
    ratio where applied is 2^(semitones / 12).

    Args:
        sr: sample rate of the waveforms in Hz (sets the STFT size of the phase vocoder).
        p: probability of shifting an example (0.6 in CLMR).
        max_semitones: semitones are drawn from [-max_semitones, max_semitones].
        kind: ``"preserve_tempo"`` (phase vocoder) or ``"tape"`` (resampling); see the module.
        n_fft: STFT size of the phase vocoder; default about 46 ms (1024 at 22.05 kHz), short
            enough that onsets smear little, long enough to resolve bass partials.
        hop_length: STFT hop; n_fft / hop_length must be even and >= 4. Default n_fft // 4.
    """

    name = "pitch_shift"

    def __init__(
        self,
        *,
        sr: int,
        p: float = 0.6,
        max_semitones: float = 5.0,
        kind: str = "preserve_tempo",
        n_fft: int | None = None,
        hop_length: int | None = None,
    ) -> None:
        super().__init__(p=p)
        if kind not in KINDS:
            raise MusicSSLError(f"PitchShift: kind must be one of {KINDS}, got {kind!r}")
        if sr <= 0 or not 0 <= max_semitones <= 24:
            raise MusicSSLError(
                f"PitchShift: need sr > 0 and 0 <= max_semitones <= 24, got {sr}, {max_semitones}"
            )
        self.sr = int(sr)
        self.max_semitones = float(max_semitones)
        self.kind = kind
        self.workspace = Workspace()
        # Eight examples' STFT planes (4 MB each) stay in a 2-core Xeon's caches: the phase
        # vocoder runs 15-20% faster on CPU in such groups than on a whole batch of 48.
        self.cpu_chunk_size = 8 if kind == "preserve_tempo" else None
        self.n_fft = n_fft or 2 ** round(math.log2(0.046 * sr))
        self.hop_length = hop_length or self.n_fft // 4
        overlap = self.n_fft // self.hop_length
        if self.n_fft % self.hop_length or overlap < 4 or overlap % 2:
            raise MusicSSLError(
                f"PitchShift: n_fft ({self.n_fft}) must be an even multiple of hop_length "
                f"({self.hop_length}), at least 4 times it"
            )

    def sample_params(
        self, batch_size: int, num_input_samples: int, *, generator: torch.Generator | None = None
    ) -> Params:
        applied = coin(self.p, batch_size, generator=generator)
        semitones = uniform(
            -self.max_semitones, self.max_semitones, batch_size, generator=generator
        )
        return {"applied": applied, "semitones": semitones}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        # Checked here, not where applied: whether an input is too short must not be random.
        if self.kind == "preserve_tempo" and x.shape[-1] <= self.n_fft // 2:
            raise MusicSSLError(
                f"PitchShift: {x.shape[-1]} samples is too short for n_fft={self.n_fft}"
            )
        return super().apply(x, params)

    def apply_all(self, x: Tensor, params: Params) -> Tensor:
        ratio = 2.0 ** (params["semitones"] / 12.0)
        if self.kind == "tape":
            return tape_pitch_shift(x, ratio)
        return phase_vocoder_pitch_shift(
            x, ratio, n_fft=self.n_fft, hop_length=self.hop_length, workspace=self.workspace
        )

    def extra_repr(self) -> str:
        return (
            f"sr={self.sr}, p={self.p}, max_semitones={self.max_semitones}, kind={self.kind!r}, "
            f"n_fft={self.n_fft}, hop_length={self.hop_length}"
        )
