"""Tests of the batched augmentations: each checks what a transform claims, on generated audio."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from musicssl.augment import (
    AUGMENTATIONS,
    Compose,
    Delay,
    Gain,
    HighLowPass,
    PitchShift,
    PolarityInversion,
    RandomCrop,
    Reverb,
    WhiteNoise,
    clmr_chain,
)
from musicssl.augment.base import fast_fft_length
from musicssl.augment.filters import butterworth_gain
from musicssl.augment.noise import NOISE_BANDS, NOISE_PERIOD, NoiseBank
from musicssl.augment.reverb import impulse_response
from musicssl.augment.wsola import COARSE_STEPS, FINE_REACH, _follow, grain_starts
from musicssl.errors import MusicSSLError

SR = 22050


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sine(freq_hz: float | list[float], *, num_samples: int, sr: int = SR) -> torch.Tensor:
    """Unit-amplitude sines, one row per frequency. Shape: (num_freqs, num_samples)."""
    freqs = torch.as_tensor(freq_hz, dtype=torch.float64).reshape(-1, 1)
    time = torch.arange(num_samples, dtype=torch.float64) / sr
    return torch.sin(2 * math.pi * freqs * time).float()


def rms_db(x: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(x.double().square().mean(dim=-1))


def peak_frequency(x: torch.Tensor, *, sr: int = SR) -> float:
    """Frequency of the largest spectral peak, refined by a parabola through log magnitudes."""
    window = torch.hann_window(x.shape[-1], dtype=torch.float64)
    magnitude = torch.fft.rfft(x.double() * window).abs()
    k = int(magnitude.argmax())
    left, centre, right = magnitude[k - 1 : k + 2].log().tolist()
    offset = 0.5 * (left - right) / (left - 2 * centre + right)
    return (k + offset) * sr / x.shape[-1]


def sounding_span(x: torch.Tensor, *, frame: int = 256) -> tuple[float, float]:
    """Start and end (in samples) of where the frame RMS exceeds half its maximum."""
    frame_rms = x.reshape(-1)[: x.numel() // frame * frame].view(-1, frame).square().mean(1).sqrt()
    loud = torch.nonzero(frame_rms > 0.5 * frame_rms.max()).flatten()
    return float(loud[0]) * frame, float(loud[-1] + 1) * frame


def slice_params(params: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    return {name: value[i : i + 1] for name, value in params.items()}


def has_probability(cls: type) -> bool:
    return "p" in inspect.signature(cls).parameters


def build(name: str, **overrides: object):
    """An instance of a registered augmentation with the arguments it requires."""
    cls = AUGMENTATIONS[name]
    accepted = inspect.signature(cls).parameters
    kwargs = {"sr": 16000} if "sr" in accepted else {}
    if "num_samples" in accepted:
        kwargs["num_samples"] = 12000
    kwargs.update(overrides)
    return cls(**kwargs)


# --- every registered augmentation ---------------------------------------------------------


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    # Tones plus a little noise: something for every transform to act on.
    return 0.5 * sine([220.0, 440.0, 1000.0, 3000.0], num_samples=16000, sr=16000) + 0.05 * (
        torch.randn(4, 16000, generator=seeded(0))
    )


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_registry_contract(name: str, batch: torch.Tensor) -> None:
    transform = build(name)
    assert transform.name == name
    y, params = transform(batch, generator=seeded(1))
    expected_length = 12000 if name == "random_crop" else batch.shape[-1]
    assert y.shape == (4, expected_length)
    assert y.dtype == batch.dtype
    assert torch.isfinite(y).all()
    assert params["applied"].dtype == torch.bool
    assert all(value.shape[0] == 4 for value in params.values())
    y_half, _ = transform(batch.to(torch.bfloat16), generator=seeded(1))
    assert y_half.dtype == torch.bfloat16
    assert torch.isfinite(y_half).all()

    # Same seed, same batch; another seed, another batch.
    has_p = has_probability(type(transform))
    coin_flipper = build(name, p=0.5) if has_p else transform
    y_1, _ = coin_flipper(batch, generator=seeded(7))
    y_2, _ = coin_flipper(batch, generator=seeded(7))
    y_3, _ = coin_flipper(batch, generator=seeded(8))
    assert torch.equal(y_1, y_2)
    assert not torch.equal(y_1, y_3)

    # Batched equals per item for the same drawn parameters (applied everywhere).
    active = build(name, p=1.0) if has_p else transform
    y, params = active(batch, generator=seeded(2))
    for i in range(4):
        single = active.apply(batch[i : i + 1], slice_params(params, i))
        torch.testing.assert_close(single[0], y[i], atol=1e-5, rtol=1e-4)

    if has_p:
        y_never, params_never = build(name, p=0.0)(batch, generator=seeded(3))
        assert not params_never["applied"].any()
        assert torch.equal(y_never, batch)
        y_always, params_always = build(name, p=1.0)(batch, generator=seeded(3))
        assert params_always["applied"].all()
        assert not torch.equal(y_always[0], batch[0])


@pytest.mark.parametrize("kind", ["preserve_tempo", "tape"])
def test_nothing_reads_waveform_values_on_the_host(kind: str) -> None:
    # Meta tensors have shapes but no values: any .item(), nonzero() or branch on a value of
    # the waveforms or of anything computed from them (a device-to-host sync on CUDA) would
    # raise here. Parameters are drawn on the host and may be read there.
    x = torch.empty(8, 16000, device="meta")
    for name in AUGMENTATIONS:
        # p = 0.5 over 8 examples: some applied, some not, so the gather path runs too.
        transform = build(name, p=0.5) if has_probability(AUGMENTATIONS[name]) else build(name)
        y, params = transform(x, generator=seeded(4))
        assert y.device.type == "meta"
        assert all(value.device.type == "cpu" for value in params.values())
    chain = clmr_chain(16000, num_samples=12000, pitch_kind=kind)
    y, params = chain(x, generator=seeded(5))
    assert y.shape == (8, 12000)
    assert 0 < params["pitch_shift"]["applied"].sum() < 8


@pytest.mark.parametrize(
    "name", [name for name in sorted(AUGMENTATIONS) if has_probability(AUGMENTATIONS[name])]
)
def test_examples_not_applied_pass_bit_exact_and_applied_ones_match_apply_all(
    name: str, batch: torch.Tensor
) -> None:
    transform = build(name, p=0.5)
    x = torch.cat([batch, batch.flip(0)])  # 8 examples
    y, params = transform(x, generator=seeded(6))
    applied = params["applied"]
    assert 0 < applied.sum() < 8
    assert torch.equal(y[~applied], x[~applied])
    chosen = {key: value[applied] for key, value in params.items()}
    torch.testing.assert_close(y[applied], transform.apply_all(x[applied], chosen))


def test_parameters_are_host_tensors_and_device_generators_are_refused() -> None:
    x = torch.randn(3, 4000, generator=seeded(0))
    _, params = clmr_chain(SR, num_samples=3000)(x, generator=seeded(1))
    for transform_params in params.values():
        assert all(value.device.type == "cpu" for value in transform_params.values())
    meta_params = {"applied": torch.ones(3, dtype=torch.bool, device="meta")}
    with pytest.raises(MusicSSLError, match="host"):
        Delay(sr=SR).apply(x, meta_params)

    # This torch build has no CUDA generator to hand; the check only reads ``device``.
    class CudaGenerator:
        device = torch.device("cuda", 0)

    with pytest.raises(MusicSSLError, match=r"torch.Generator\(\) \(CPU\)"):
        Delay(sr=SR)(x, generator=CudaGenerator())  # type: ignore[arg-type]


def test_rejects_bad_input() -> None:
    with pytest.raises(MusicSSLError, match="shape"):
        Gain()(torch.zeros(2, 1, 100))
    with pytest.raises(MusicSSLError, match="probability"):
        Gain(p=1.5)
    with pytest.raises(MusicSSLError, match="fewer"):
        RandomCrop(1000)(torch.zeros(2, 999))
    with pytest.raises(MusicSSLError, match="kind"):
        PitchShift(sr=SR, kind="sox")
    for settings in ({"search_ms": -1.0}, {"overlap_ms": 0.5}, {"search_ms": 69.0}):
        with pytest.raises(MusicSSLError, match="overlap_ms <= hop_ms"):
            PitchShift(sr=SR, **settings)


def test_fast_fft_length_is_the_smallest_power_of_2_times_1_3_or_5() -> None:
    def fast(n: int) -> bool:
        while n % 2 == 0:
            n //= 2
        return n in (1, 3, 5)

    for n in (1, 2, 7, 97, 1000, 59049, 59490, 81539):
        expected = next(m for m in range(n, 2 * n + 2) if fast(m))
        assert fast_fft_length(n) == expected
    assert fast_fft_length(59490) == 65536 and fast_fft_length(81539) == 81920


def test_noise_bank_windows_are_slices_of_one_periodic_sequence() -> None:
    bank = NoiseBank()
    offsets = torch.tensor([0, 5, NOISE_PERIOD - 3])
    windows = bank.windows(offsets, 10, dtype=torch.float32)
    assert windows.shape == (3, 10)
    torch.testing.assert_close(windows[1, :5], windows[0, 5:])
    torch.testing.assert_close(windows[2, 3:], windows[0, :7])  # wraps round the period
    longer = bank.windows(torch.tensor([7]), NOISE_PERIOD + 5, dtype=torch.float32)[0]
    torch.testing.assert_close(longer[NOISE_PERIOD:], longer[:5])
    # Drawn from a fixed seed: a fresh bank (or one in another process) reads the same noise.
    assert torch.equal(NoiseBank().windows(offsets, 10, dtype=torch.float32), windows)
    period = bank.windows(torch.tensor([0]), NOISE_PERIOD, dtype=torch.float64)[0]
    assert abs(float(period.mean())) < 0.01
    assert abs(float(period.std()) - 1.0) < 0.01


def test_noise_bank_bands_split_the_same_noise_at_the_same_offsets() -> None:
    offsets = torch.tensor([0, 2, NOISE_PERIOD - 2])  # the last runs across the period's end
    full, low, high = (
        NoiseBank(band).windows(offsets, 12, dtype=torch.float64) for band in NOISE_BANDS
    )
    torch.testing.assert_close(low + high, full)
    # The low band is each sample averaged with the three before it, across the end too.
    for row in (0, 2):
        torch.testing.assert_close(low[row, 3:], full[row].unfold(0, 4, 1).mean(-1))
    torch.testing.assert_close(low[1, :10], low[0, 2:])
    with pytest.raises(MusicSSLError, match="band"):
        NoiseBank("mid")


# --- each transform does what it says ------------------------------------------------------


def test_random_crop_takes_the_drawn_window() -> None:
    x = torch.arange(2 * 5000, dtype=torch.float32).view(2, 5000)
    y, params = RandomCrop(1000)(x, generator=seeded(0))
    assert y.shape == (2, 1000)
    for i in range(2):
        offset = int(params["offset"][i])
        assert 0 <= offset <= 4000
        assert torch.equal(y[i], x[i, offset : offset + 1000])


def test_polarity_flips_sign_exactly_where_applied() -> None:
    x = torch.randn(64, 100, generator=seeded(0))
    y, params = PolarityInversion(p=0.5)(x, generator=seeded(1))
    applied = params["applied"]
    assert 0 < applied.sum() < 64
    assert torch.equal(y[applied], -x[applied])
    assert torch.equal(y[~applied], x[~applied])


def test_gain_changes_rms_by_the_drawn_decibels() -> None:
    x = sine([100.0, 200.0, 300.0, 400.0, 500.0, 600.0], num_samples=8000)
    y, params = Gain(p=0.5, min_db=-20.0, max_db=6.0)(x, generator=seeded(0))
    expected = torch.where(params["applied"], params["gain_db"], 0.0).double()
    assert params["applied"].any() and not params["applied"].all()
    torch.testing.assert_close(rms_db(y) - rms_db(x), expected, atol=0.01, rtol=0)


def test_white_noise_hits_the_drawn_snr() -> None:
    x = sine([300.0, 500.0, 700.0], num_samples=20000)
    y, params = WhiteNoise(p=1.0, min_snr_db=10.0, max_snr_db=40.0)(x, generator=seeded(0))
    measured = rms_db(x) - rms_db(y - x)
    torch.testing.assert_close(measured, params["snr_db"].double(), atol=0.01, rtol=0)
    # White: as much noise power below a quarter of the band as above three quarters.
    power = torch.fft.rfft(y - x).abs().square()
    quarter = power.shape[-1] // 4
    ratio = power[:, :quarter].sum(-1) / power[:, -quarter:].sum(-1)
    assert ((ratio > 0.9) & (ratio < 1.1)).all()


@pytest.mark.parametrize("high_pass", [False, True])
def test_filter_attenuates_past_the_cutoff_as_a_butterworth(high_pass: bool) -> None:
    cutoff = 1000.0
    order = 2
    # Tones four times past the cut-off (stop band) and four times inside it (pass band).
    stop, passing = (cutoff / 4, cutoff * 4) if high_pass else (cutoff * 4, cutoff / 4)
    x = sine([stop, passing], num_samples=SR)
    params = {
        "applied": torch.tensor([True, True]),
        "high_pass": torch.tensor([high_pass, high_pass]),
        "cutoff_hz": torch.tensor([cutoff, cutoff]),
    }
    y = HighLowPass(sr=SR, order=order).apply(x, params)
    middle = slice(SR // 4, 3 * SR // 4)  # away from the edges
    attenuation = rms_db(x[:, middle]) - rms_db(y[:, middle])

    # |H|^2 = 1 / (1 + 4^(2n)) at four times the cut-off, 1 / (1 + 4^(-2n)) at a quarter.
    expected = torch.tensor([10 * math.log10(1 + 4 ** (2 * order)), 10 * math.log10(1 + 4**-4)])
    torch.testing.assert_close(attenuation, expected.double(), atol=0.05, rtol=0)


def test_butterworth_gain_at_dc_the_cutoff_and_far_past_it() -> None:
    freqs = torch.tensor([0.0, 500.0, 1000.0, 2000.0, 1e6])
    cutoff = torch.tensor([1000.0, 1000.0])
    high_pass = torch.tensor([False, True])
    gain = butterworth_gain(freqs, cutoff, high_pass, order=2)
    # 1 / sqrt(1 + 2^4) an octave into the stop band; 1 / sqrt(2) at the cut-off.
    octave, half = 1 / math.sqrt(17), 1 / math.sqrt(2)
    torch.testing.assert_close(
        gain[0], torch.tensor([1.0, 1 / math.sqrt(1 + 2**-4), half, octave, 0.0])
    )
    torch.testing.assert_close(
        gain[1], torch.tensor([0.0, octave, half, 1 / math.sqrt(1 + 2**-4), 1.0])
    )
    steep = butterworth_gain(freqs, cutoff, high_pass, order=40)  # w^80 overflows
    assert torch.isfinite(steep).all()
    torch.testing.assert_close(steep[:, [0, -1]], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


def test_filter_draws_cutoffs_from_the_range_of_their_kind() -> None:
    transform = HighLowPass(sr=SR)
    params = transform.sample_params(256, 1000, generator=seeded(0))
    high, cutoff = params["high_pass"], params["cutoff_hz"]
    assert 0 < high.sum() < 256
    assert ((cutoff[high] >= 200) & (cutoff[high] <= 1200)).all()
    assert ((cutoff[~high] >= 2200) & (cutoff[~high] <= 4000)).all()


def test_delay_echo_sits_at_the_drawn_delay() -> None:
    x = torch.randn(6, SR, generator=seeded(0))
    transform = Delay(sr=SR, p=1.0, min_ms=100.0, max_ms=450.0, step_ms=50.0)
    y, params = transform(x, generator=seeded(1))
    # Cross-correlation of output and input: the echo is the largest peak past lag 0.
    n_fft = 2 * SR
    xcorr = torch.fft.irfft(torch.fft.rfft(y, n=n_fft) * torch.fft.rfft(x, n=n_fft).conj(), n_fft)
    lag = xcorr[:, 100 : SR // 2].argmax(dim=-1) + 100
    assert torch.equal(lag, params["delay_samples"])
    in_samples = params["delay_ms"].double() * SR / 1000
    torch.testing.assert_close(params["delay_samples"].double(), in_samples, atol=0.5, rtol=0)
    # And the mix is CLMR's: (x + 0.5 x_delayed) / 2.
    d = int(params["delay_samples"][0])
    torch.testing.assert_close(y[0, d:], (x[0, d:] + 0.5 * x[0, :-d]) / 2)
    torch.testing.assert_close(y[0, :d], x[0, :d] / 2)


@pytest.mark.parametrize("kind", ["preserve_tempo", "tape"])
def test_pitch_shift_moves_a_sine_by_the_drawn_interval(kind: str) -> None:
    semitones = torch.tensor([-5.0, -2.5, 1.0, 3.0, 5.0])
    num_samples = 3 * SR // 2
    x = sine([440.0] * 5, num_samples=num_samples)
    params = {"applied": torch.ones(5, dtype=torch.bool), "semitones": semitones}
    y = PitchShift(sr=SR, kind=kind).apply(x, params)
    assert y.shape == x.shape
    ratio = 2 ** (semitones / 12)
    for i in range(5):
        # Tape shifted up ends early: measure where the tone still sounds.
        end = int(num_samples / max(float(ratio[i]), 1.0)) - 2048
        measured = peak_frequency(y[i, 2048:end])
        assert measured == pytest.approx(440.0 * float(ratio[i]), rel=0.01)
    if kind == "preserve_tempo":  # a steady tone keeps its level
        torch.testing.assert_close(rms_db(y), rms_db(x), atol=0.1, rtol=0)


@pytest.mark.parametrize("kind", ["preserve_tempo", "tape"])
def test_pitch_shift_keeps_durations_only_when_preserving_tempo(kind: str) -> None:
    semitones = torch.tensor([-5.0, 4.0])
    burst_start, burst_length = int(0.3 * SR), int(0.6 * SR)
    x = torch.zeros(2, int(1.5 * SR))
    x[:, burst_start : burst_start + burst_length] = sine([330.0, 330.0], num_samples=burst_length)
    params = {"applied": torch.ones(2, dtype=torch.bool), "semitones": semitones}
    shift = PitchShift(sr=SR, kind=kind)
    y = shift.apply(x, params)
    for i, ratio in enumerate((2 ** (semitones / 12)).tolist()):
        start, end = sounding_span(y[i])
        expected = burst_length if kind == "preserve_tempo" else burst_length / ratio
        expected_start = burst_start if kind == "preserve_tempo" else burst_start / ratio
        assert end - start == pytest.approx(expected, rel=0.04)
        # A frame of the measurement, and for WSOLA how far a grain may sit from its time
        # (the search) and read ahead of it (r - 1 times its length, r > 1). In the silence
        # before the burst every start matches equally well, so the search may pick any.
        slack = 256.0
        if kind == "preserve_tempo":
            segment = shift.hop + shift.overlap
            slack += shift.search + COARSE_STEPS[0] + max(ratio - 1, 0.0) * segment
        assert start == pytest.approx(expected_start, abs=slack)


def test_tempo_preserving_shift_joins_its_grains_in_phase() -> None:
    # Cross-fading two copies of a tone out of phase would dip the level at every grain
    # boundary (every 70 ms); the search for each grain's start keeps it steady, bass included.
    freqs, semitones = [60.0, 220.0, 1000.0], torch.tensor([-4.0, 3.0, 5.0])
    x = sine(freqs, num_samples=SR)
    params = {"applied": torch.ones(3, dtype=torch.bool), "semitones": semitones}
    y = PitchShift(sr=SR, kind="preserve_tempo").apply(x, params)
    for i, freq in enumerate(freqs):
        period = round(SR / (freq * 2 ** (float(semitones[i]) / 12)))
        frames = y[i, 2048:-2048].unfold(0, 4 * period, period)  # four periods each
        level_db = 10 * torch.log10(frames.double().square().mean(dim=1))
        assert float(level_db.max() - level_db.min()) < 0.5


def greedy_wsola_starts(x: torch.Tensor, ratio: float, *, hop: int, overlap: int, search: int):
    """WSOLA's coarse-to-fine search the plain way, one grain after the other (x: one example)."""
    advance = round(ratio * hop)
    total = x.cumsum(0)
    sums = {step: total[step:] - total[:-step] for step in COARSE_STEPS}

    def best(template: torch.Tensor, candidates: list[torch.Tensor]) -> int:
        scores = [torch.dot(template, c) / c.norm().clamp_min(1e-6) for c in candidates]
        return int(torch.stack(scores).argmax())

    num_grains = -(-x.shape[0] // hop) - 2
    centres = [k * hop for k in range(num_grains)]
    for level, step in enumerate(COARSE_STEPS):  # each level from the last's choices
        reach = search // step if level == 0 else COARSE_STEPS[level - 1] // step - 1
        span = step * (overlap // step)  # sums of step samples over the cross-fade
        starts = [0]
        for k in range(1, num_grains):
            first = centres[k] - step * reach
            candidates = [
                sums[step][a : a + span : step]
                for a in range(first, first + step * (2 * reach + 1), step)
            ]
            a = starts[-1] + advance
            starts.append(first + step * best(sums[step][a : a + span : step], candidates))
        centres = starts
    fine, middle, length = [0], 3 * overlap // 8, overlap // 4
    reach = FINE_REACH
    for k in range(1, num_grains):  # fine: every sample near the coarse start
        first = centres[k] - reach + middle
        template = x[fine[-1] + advance + middle :][:length]
        candidates = [x[first + j :][:length] for j in range(2 * reach + 1)]
        fine.append(first - middle + best(template, candidates))
    return fine


def test_wsola_chooses_the_grains_the_one_at_a_time_search_chooses() -> None:
    # The grain starts are found for all grains at once (tables chained by pointer doubling);
    # they must be the starts the greedy search finds grain after grain.
    x = 0.5 * sine([110.0, 347.0], num_samples=30000, sr=16000).double()
    x += 0.3 * torch.randn(2, 30000, generator=seeded(0), dtype=torch.float64)
    ratios = torch.tensor([2 ** (3.5 / 12), 2 ** (-4 / 12)], dtype=torch.float64)
    settings = {"hop": 960, "overlap": 192, "search": 112}
    num_grains = -(-x.shape[1] // 960) - 2
    starts = grain_starts(x, ratios, num_grains=num_grains, **settings)
    for i in range(2):
        assert starts[i].tolist() == greedy_wsola_starts(x[i], float(ratios[i]), **settings)


def test_chained_choices_by_pointer_doubling_are_the_choices_made_in_turn() -> None:
    # Chains of 1 to 9 maps: one, exact powers of two and one past them (the identity padding).
    for count in range(1, 10):
        table = torch.randint(0, 5, (3, count, 5), generator=seeded(count))
        choice, expected = torch.full((3,), 2), []
        for k in range(count):
            choice = table[torch.arange(3), k, choice]
            expected.append(choice)
        assert torch.equal(_follow(table, 2), torch.stack(expected, dim=1)), count


def test_pitch_shift_by_zero_semitones_gives_the_input_back() -> None:
    x = torch.randn(2, SR, generator=seeded(0))
    params = {"applied": torch.ones(2, dtype=torch.bool), "semitones": torch.zeros(2)}
    for kind in ("preserve_tempo", "tape"):
        y = PitchShift(sr=SR, kind=kind).apply(x, params)
        torch.testing.assert_close(y, x, atol=1e-4, rtol=1e-4)


def schroeder_rt60(ir: torch.Tensor, *, sr: int) -> float:
    """Decay time to -60 dB, extrapolated from the -5 to -35 dB part of the energy decay."""
    energy = ir.double().square().flip(-1).cumsum(-1).flip(-1)
    decay_db = 10 * torch.log10(energy / energy[0])
    fit = (decay_db <= -5) & (decay_db >= -35)
    time = torch.arange(ir.shape[-1], dtype=torch.float64)[fit] / sr
    level = decay_db[fit]
    slope = ((time - time.mean()) * (level - level.mean())).sum() / (
        time - time.mean()
    ).square().sum()
    return float(-60 / slope)


def test_reverb_tail_decays_in_the_drawn_rt60() -> None:
    rt60 = torch.tensor([0.2, 0.5, 0.9])
    x = torch.zeros(3, int(1.5 * SR))
    x[:, 0] = 1.0  # an impulse: the output is the impulse response itself
    params = Reverb(sr=SR, max_rt60=1.0).sample_params(3, x.shape[-1], generator=seeded(0))
    params.update(
        applied=torch.ones(3, dtype=torch.bool),
        rt60=rt60,
        damping=torch.zeros(3),
        room_size=torch.zeros(3),
        wet=torch.ones(3),
    )
    y = Reverb(sr=SR, max_rt60=1.0).apply(x, params)
    for i in range(3):
        assert schroeder_rt60(y[i], sr=SR) == pytest.approx(float(rt60[i]), rel=0.1)


def test_reverb_mixes_the_dry_signal_with_its_circular_convolution_by_the_impulse_response() -> (
    None
):
    sr = 8000
    x = torch.randn(2, 3000, generator=seeded(0), dtype=torch.float64)
    transform = Reverb(sr=sr, p=1.0, max_rt60=0.3)
    params = transform.sample_params(2, x.shape[-1], generator=seeded(1))
    y = transform.apply(x, params)
    offset, length = params["noise_offset"], transform.ir_length
    ir = impulse_response(
        transform.low_noise.windows(offset, length, dtype=torch.float64),
        transform.high_noise.windows(offset, length, dtype=torch.float64),
        sr=sr,
        rt60=params["rt60"].double(),
        damping=params["damping"].double(),
        pre_delay_s=params["room_size"].double() * transform.max_pre_delay_s,
    )
    period = transform.fft_length(x.shape[-1])
    assert period == 4096  # the fast length past 3000 samples and 20 ms of silence
    for i in range(2):
        # Circular convolution by hand: the flipped impulse response slid along one period of
        # the zero-padded input, with the period's end again in front of its start.
        one_period = torch.nn.functional.pad(x[i], (0, period - x.shape[-1]))
        looped = torch.cat([one_period[-(length - 1) :], one_period])
        convolved = looped.unfold(0, length, 1)[: x.shape[-1]] @ ir[i].flip(0)
        wet = float(params["wet"][i])
        torch.testing.assert_close(y[i], (1 - wet) * x[i] + wet * convolved)


def test_reverb_tail_past_the_end_comes_round_to_the_start() -> None:
    # An impulse 100 ms before the end: its tail rings on past the end, for the rest of the
    # period (20 ms of silence and the rounding up to a fast length), then from sample 0 on.
    num_samples = 30000
    transform = Reverb(sr=SR, min_rt60=0.8, max_rt60=0.8)
    period = transform.fft_length(num_samples)
    assert period == 32768
    x = torch.zeros(1, num_samples)
    impulse = num_samples - int(0.1 * SR)
    x[0, impulse] = 1.0
    params = transform.sample_params(1, num_samples, generator=seeded(0))
    params.update(applied=torch.ones(1, dtype=torch.bool), room_size=torch.zeros(1))
    y = transform.apply(x, params)
    response = torch.cat([y[0, impulse:], torch.zeros(period - num_samples), y[0, :impulse]])
    # The whole impulse response, in order: the part past the period's end at the start.
    offset = params["noise_offset"]
    ir = impulse_response(
        transform.low_noise.windows(offset, transform.ir_length, dtype=torch.float32),
        transform.high_noise.windows(offset, transform.ir_length, dtype=torch.float32),
        sr=SR,
        rt60=params["rt60"],
        damping=params["damping"],
        pre_delay_s=torch.zeros(1),
        level=params["wet"],
    )[0]
    ir[0] += 1 - params["wet"][0]
    wrapped = slice(period - impulse, transform.ir_length)  # rings from sample 0 of the output
    assert wrapped.start < wrapped.stop
    # The samples the period's silence holds are missing from the output; the rest match.
    kept = torch.ones(transform.ir_length, dtype=torch.bool)
    kept[num_samples - impulse : period - impulse] = False
    torch.testing.assert_close(response[: transform.ir_length][kept], ir[kept], atol=1e-5, rtol=0)
    assert y[0, : wrapped.stop - wrapped.start].abs().max() > 1e-3  # the tail, at the start


def test_reverb_lengthens_the_decay_and_keeps_length() -> None:
    burst = int(0.2 * SR)
    x = torch.zeros(4, SR)
    x[:, :burst] = sine([500.0] * 4, num_samples=burst)
    transform = Reverb(sr=SR, p=1.0, min_rt60=0.5, max_rt60=0.8, min_wet=0.3, max_wet=0.5)
    y, _ = transform(x, generator=seeded(0))
    assert y.shape == x.shape
    after = slice(burst + int(0.05 * SR), burst + int(0.15 * SR))
    tail_db = rms_db(y[:, after]) - rms_db(y[:, :burst])
    assert (tail_db > -40).all()  # the dry signal is silent there
    # Later in the tail the level keeps falling.
    later = slice(burst + int(0.35 * SR), burst + int(0.45 * SR))
    assert (rms_db(y[:, later]) < rms_db(y[:, after])).all()


def test_reverb_pre_delay_grows_with_room_size() -> None:
    room_size = torch.tensor([0.0, 0.5, 1.0])
    x = torch.zeros(3, SR // 2)
    x[:, 0] = 1.0
    transform = Reverb(sr=SR, max_pre_delay_ms=20.0)
    params = transform.sample_params(3, x.shape[-1], generator=seeded(0))
    params.update(applied=torch.ones(3, dtype=torch.bool), room_size=room_size, wet=torch.ones(3))
    y = transform.apply(x, params)
    first_sound = [int(torch.nonzero(row.abs() > 1e-6)[0]) for row in y]
    assert first_sound == [0, math.ceil(0.010 * SR), math.ceil(0.020 * SR)]


# --- the chain -----------------------------------------------------------------------------


def test_clmr_chain_makes_views_of_the_crop_length() -> None:
    chain = clmr_chain(SR, num_samples=30000)
    x = 0.3 * sine([220.0, 660.0], num_samples=40000) + 0.01 * torch.randn(
        2, 40000, generator=seeded(0)
    )
    x_a, params_a = chain(x, generator=seeded(1))
    x_b, params_b = chain(x, generator=seeded(2))
    assert x_a.shape == x_b.shape == (2, 30000)
    assert list(params_a) == [
        "random_crop",
        "polarity_inversion",
        "white_noise",
        "gain",
        "high_low_pass",
        "delay",
        "pitch_shift",
        "reverb",
    ]
    assert not torch.equal(x_a, x_b)
    # Replaying the recorded parameters reproduces the view; so does the same seed.
    torch.testing.assert_close(chain.apply(x, params_a), x_a)
    assert torch.equal(chain(x, generator=seeded(1))[0], x_a)


def test_compose_names_repeated_transforms_apart() -> None:
    chain = Compose([Gain(p=1.0), Gain(p=1.0), PolarityInversion(p=1.0)])
    y, params = chain(torch.ones(3, 10), generator=seeded(0))
    assert list(params) == ["gain", "gain_1", "polarity_inversion"]
    total_db = params["gain"]["gain_db"] + params["gain_1"]["gain_db"]
    torch.testing.assert_close(y[:, 0], -(10 ** (total_db / 20)))


def test_chain_writes_into_its_own_batches_never_into_the_callers() -> None:
    # No crop: the first transforms get the caller's batch itself.
    chain = clmr_chain(SR, num_samples=None, p_polarity=0.5, p_filter=0.5, p_pitch=0.5)
    x = 0.3 * sine([220.0, 660.0, 1320.0, 440.0], num_samples=8000)
    before = x.clone()
    y, params = chain(x, generator=seeded(3))
    assert torch.equal(x, before)
    assert torch.equal(chain.apply(x, params), y)
    assert torch.equal(x, before)


@pytest.mark.parametrize("kind", ["preserve_tempo", "tape"])
def test_a_deferred_filter_gives_what_the_transforms_give_in_turn(kind: str) -> None:
    # The chain applies the high/low-pass inside the pitch shift's or the reverb's FFT, or
    # on its own at the end, after the delay. Running every transform in turn must give the
    # same but for the filter's ringing at the edges: at the start and end, and around the
    # echo's onset (filtered before it is delayed, the echo has no pre-ringing), which the
    # reverb then spreads. These stay more than 40 dB down.
    chain = Compose(
        [
            HighLowPass(sr=SR, p=0.7),
            Delay(sr=SR, p=0.5),
            PitchShift(sr=SR, p=0.5, kind=kind),
            Reverb(sr=SR, p=0.5),
        ]
    )
    x = 0.3 * sine([110.0, 220.0, 440.0, 880.0] * 4, num_samples=SR)
    x += 0.1 * torch.randn(16, SR, generator=seeded(0))
    y, params = chain(x, generator=seeded(6))
    in_turn = x
    for key, transform in zip(chain.keys, chain.transforms):
        in_turn = transform.apply(in_turn, params[key])
    error = (y - in_turn).norm(dim=1) / in_turn.norm(dim=1)
    assert (error < 0.01).all()
    # A filter lost or applied twice would show.
    filtered = params["high_low_pass"]["applied"]
    unfiltered = {**params, "high_low_pass": {**params["high_low_pass"], "applied": ~filtered}}
    twisted = (chain.apply(x, unfiltered) - in_turn).norm(dim=1) / in_turn.norm(dim=1)
    assert (twisted > 0.1).all()
    # Every way a filtered example can go: inside the pitch shift's FFT, inside the
    # reverb's, and on its own.
    shifted, reverberated = params["pitch_shift"]["applied"], params["reverb"]["applied"]
    assert (filtered & shifted).any()
    assert (filtered & ~shifted & reverberated).any()
    assert (filtered & ~shifted & ~reverberated).any()


def test_overwrite_scatters_the_applied_examples_into_the_batch_itself() -> None:
    x = 0.3 * sine([220.0, 440.0, 880.0], num_samples=12000)
    transform = Reverb(sr=SR, p=1.0)
    params = transform.sample_params(3, 12000, generator=seeded(0))
    params["applied"] = torch.tensor([True, False, True])
    expected = transform.apply(x, params)
    batch = x.clone()
    y = transform.apply(batch, params, overwrite=True)
    assert y is batch
    assert torch.equal(y, expected)
    assert torch.equal(y[1], x[1])
