"""The equivariant methods: loss values by hand, equivariance held by the architectures,
calibration on synthetic audio, and the pitch, key and tempo verbs' one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor

from musicssl.encoders import KeyCNN, PestoCNN, TempoCNN
from musicssl.encoders._bins import local_expectation, lowest_octave_peak
from musicssl.encoders.tempo_cnn import stretch_envelope
from musicssl.errors import MusicSSLError
from musicssl.losses import (
    expected_value_equivariance,
    invariance_cross_entropy,
    key_cpsd_loss,
    shift_cross_entropy,
)
from musicssl.methods import build_method
from musicssl.pitch import PitchModel, harmonic_tone
from musicssl.readouts import (
    KEY_PROFILES,
    KeyModel,
    cadence,
    click_track,
    key_name,
    profile_key,
)
from musicssl.readouts.key import MODES

from conftest import untrained_run

PITCH_NAMES = {key_name(tonic, "major").split()[0] for tonic in range(12)}

# --- losses on hand-made inputs -------------------------------------------------------------


def _one_hot(index: int, size: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor([index]), size).float()


def test_invariance_cross_entropy_by_hand():
    p_a, p_b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]])
    # H(a, b) = -log 0.5; H(b, a) = -0.5 log 1 - 0.5 log(1e-7) (the floor of a zero).
    expected = (math.log(2) - 0.5 * math.log(1e-7)) / 2
    assert invariance_cross_entropy(p_a, p_b).item() == pytest.approx(expected, rel=1e-5)
    assert invariance_cross_entropy(p_b, p_a).item() == pytest.approx(expected, rel=1e-5)


def test_shift_cross_entropy_is_zero_for_a_matching_shift_and_not_otherwise():
    p_a, p_b = _one_hot(1, 5), _one_hot(3, 5)
    assert shift_cross_entropy(p_a, p_b, torch.tensor([2])).item() == pytest.approx(0.0, abs=1e-6)
    wrong = shift_cross_entropy(p_a, p_b, torch.tensor([1])).item()
    assert wrong == pytest.approx(-math.log(1e-7), rel=1e-5)


def test_expected_value_equivariance_by_hand():
    # One bin per octave: phi of a one-hot at bin 2 is 4 times that at bin 0.
    p_a, p_b = _one_hot(0, 3), _one_hot(2, 3)
    assert expected_value_equivariance(
        p_a, p_b, torch.tensor([2]), bins_per_octave=1
    ).item() == pytest.approx(0.0, abs=1e-6)
    # Unshifted target 1: errors 4 - 1 = 3 and 1/4 - 1; Huber(delta 0.25) of each.
    huber = lambda e: 0.25 * (abs(e) - 0.125)  # noqa: E731 (|e| > delta)
    expected = (huber(3.0) + huber(-0.75)) / 2
    value = expected_value_equivariance(p_a, p_b, torch.tensor([0]), bins_per_octave=1)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_key_cpsd_loss_by_hand():
    c, g = _one_hot(0, 12), _one_hot(7, 12)
    assert key_cpsd_loss(c, g, torch.tensor([7])).item() == pytest.approx(0.0, abs=1e-6)
    # Seven semitones is 49 = 1 (mod 12) steps of fifths: |1 - e^(-i pi / 6)|^2 = 2 - sqrt 3.
    assert key_cpsd_loss(c, c, torch.tensor([7])).item() == pytest.approx(
        2 - math.sqrt(3), rel=1e-5
    )
    uniform = torch.full((1, 12), 1 / 12)
    assert key_cpsd_loss(uniform, uniform, torch.tensor([0])).item() == pytest.approx(1.0)


def test_losses_refuse_mismatched_shapes():
    with pytest.raises(MusicSSLError, match="shift_cross_entropy"):
        shift_cross_entropy(torch.ones(2, 4) / 4, torch.ones(2, 5) / 5, torch.zeros(2))
    with pytest.raises(MusicSSLError, match="12 classes"):
        key_cpsd_loss(torch.ones(1, 24) / 24, torch.ones(1, 24) / 24, torch.zeros(1))


def test_shift_losses_fall_when_a_table_of_logits_learns_to_move():
    # Logits per input position; views shifted by known bins; the table must learn to move.
    torch.manual_seed(0)
    logits = torch.zeros(8, 16, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.1)
    shift = torch.tensor([1, 2, 3, -1, -2, 0, 2, 1])
    first = last = 0.0
    for step in range(30):
        p = logits.softmax(-1)
        moved = torch.stack([torch.roll(row, int(k)) for row, k in zip(p, shift, strict=True)])
        loss = shift_cross_entropy(p.detach(), moved, shift) + invariance_cross_entropy(p, p)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first, last = (loss.item(), last) if step == 0 else (first, loss.item())
    assert last < 0.5 * first


# --- equivariance of the architectures ------------------------------------------------------


def _silent_with_content(num_rows: int, num_bins: int, low: int, high: int, *extra: int):
    """dB frames silent (-100) but for random content in bins [low, high)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.full((num_rows, num_bins, *extra), -100.0)
    x[:, low:high] = -60 * torch.rand(num_rows, high - low, *extra, generator=generator)
    return x


@pytest.mark.parametrize("k", [-5, 3, 7])
def test_a_cqt_shift_of_k_bins_moves_the_pitch_distribution_by_k_bins(k):
    torch.manual_seed(0)
    encoder = PestoCNN(sample_rate=8000, num_octaves=4, max_shift=8, channels=4, depth=2,
                       kernel_size=5, output_kernel=15).eval()  # fmt: skip
    frames = _silent_with_content(3, encoder.num_bins, 60, 80)
    with torch.no_grad():
        p = encoder.frame_logits(encoder.window(frames, encoder.max_shift)).softmax(-1)
        p_k = encoder.frame_logits(encoder.window(frames, encoder.max_shift - k)).softmax(-1)
    torch.testing.assert_close(p_k, torch.roll(p, k, dims=-1))
    assert not torch.allclose(p, torch.roll(p, 1, dims=-1))  # the output has a shape to move


def test_a_harmonic_tone_a_fifth_up_peaks_seven_semitones_up():
    torch.manual_seed(0)
    encoder = PestoCNN(channels=4, depth=2).eval()
    peaks = []
    for f0 in (220.0, 220.0 * 2 ** (7 / 12)):
        with torch.no_grad():
            p = encoder(torch.from_numpy(harmonic_tone(f0, sr=16000, seconds=0.5))[None])
        peaks.append(local_expectation(p[0].double(), radius=3)[0].item())
    assert peaks[1] - peaks[0] == pytest.approx(7 * 3, abs=1.0)


def test_the_read_peak_moves_down_an_octave_only_when_the_octave_below_holds_mass():
    # 4 bins per octave; a peak at bin 9 with 1% of its mass at bin 5 (an octave below),
    # none at bin 1: the peak moves to 5 and stops there. Without that mass it stays.
    p = torch.zeros(2, 12)
    p[:, 9] = 0.99
    p[0, 5] = 0.01
    p[1, 2] = 0.01  # not an octave below: ignored (radius 0)
    p = p / p.sum(-1, keepdim=True)
    peak = lowest_octave_peak(p, bins_per_octave=4, radius=0, min_ratio=1e-3)
    assert peak.tolist() == [5, 9]
    strict = lowest_octave_peak(p, bins_per_octave=4, radius=0, min_ratio=0.02)
    assert strict.tolist() == [9, 9]
    # Within the radius the largest bin below is taken, and the mean centres on it.
    p = torch.tensor([[0.0, 0.0, 0.002, 0.004, 0.0, 0.0, 0.5, 0.494]])
    peak = lowest_octave_peak(p, bins_per_octave=4, radius=1, min_ratio=1e-3)
    assert peak.tolist() == [3]
    centre, mass = local_expectation(p, radius=1, peak=peak)
    assert centre.item() == pytest.approx((2 * 0.002 + 3 * 0.004) / 0.006)
    assert mass.item() == pytest.approx(0.006)


def _transposed_outputs(k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A small key CNN's pitch classes and logits of a window, then of it moved up k semitones."""
    torch.manual_seed(0)
    encoder = KeyCNN(sample_rate=8000, hop_length=64, num_octaves=4, channels=4, depth=2,
                     output_kernel=9).eval()  # fmt: skip
    spectrum = _silent_with_content(2, encoder.num_bins, 44, 52, 16)
    step = encoder.bins_per_semitone
    with torch.no_grad():
        classes, logits = encoder.classes_and_logits(encoder.window(spectrum, encoder.max_shift))
        window = encoder.window(spectrum, encoder.max_shift - k * step)
        moved_classes, moved_logits = encoder.classes_and_logits(window)
    return classes, logits, moved_classes, moved_logits


@pytest.mark.parametrize("k", [-4, 1, 5])
def test_a_transposition_by_k_semitones_rotates_the_key_output_by_k(k):
    _, logits, _, moved = _transposed_outputs(k)
    rolled = logits.reshape(2, 2, 12, -1).roll(k, dims=2).reshape(logits.shape)
    torch.testing.assert_close(moved, rolled)
    assert not torch.allclose(logits, logits.reshape(2, 2, 12, -1).roll(1, 2).reshape(-1, 24, 4))


@pytest.mark.parametrize("k", [-3, 2])
def test_a_transposition_by_k_semitones_rotates_the_pitch_class_layer_by_k(k):
    classes, _, moved, _ = _transposed_outputs(k)
    assert classes.shape == (2, 4 * 12, 4)
    rolled = classes.reshape(2, 4, 12, -1).roll(k, dims=2).reshape(classes.shape)
    torch.testing.assert_close(moved, rolled)
    assert not torch.allclose(classes, classes.reshape(2, 4, 12, -1).roll(1, 2).reshape(2, 48, 4))


@pytest.mark.parametrize("k", [-3, 2])
def test_turned_pitch_classes_are_those_of_the_transposed_window(k):
    from musicssl.methods.stone import turn_classes

    classes, _, moved, _ = _transposed_outputs(k)
    turned = turn_classes(classes.mean(-1), torch.tensor([k, k]))
    torch.testing.assert_close(turned, moved.mean(-1).reshape(2, 4, 12))
    # By hand: one row turned by 1, the other by -2, class c goes to c + k.
    row = torch.arange(12.0).repeat(2)[None].expand(2, -1)  # two channels of classes 0..11
    turned = turn_classes(row, torch.tensor([1, -2]))
    assert turned[0, 0].tolist() == [11.0, *range(11)]
    assert turned[1, 1].tolist() == [*range(2, 12), 0.0, 1.0]


def test_stone_contrast_trains_the_pitch_class_layer():
    encoder = KeyCNN(sample_rate=8000, hop_length=32, num_octaves=4, channels=4, depth=2,
                     output_kernel=9, input_samples=243)  # fmt: skip
    x_a, x_b = torch.randn(4, 243), torch.randn(4, 243)
    plain = build_method("stone", encoder)
    assert plain.projector is None and "contrast" not in plain(x_a, x_b)
    method = build_method("stone", encoder, contrast_weight=0.5)
    outputs = method(x_a, x_b)
    assert outputs["contrast"].item() > 0
    without = outputs["loss"] - 0.5 * outputs["contrast"]
    expected = outputs["cpsd"] + outputs["mode"] + outputs["balance"]
    torch.testing.assert_close(without.detach(), expected)
    outputs["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.projector.parameters())
    with pytest.raises(MusicSSLError, match="contrast_weight"):
        build_method("stone", encoder, contrast_weight=-1.0)


def test_the_pitch_class_layer_folds_the_last_block_by_hand():
    encoder = KeyCNN(sample_rate=8000, hop_length=64, num_octaves=4, channels=1, depth=1,
                     output_kernel=9, max_shift_semitones=6)  # fmt: skip
    # Last-block bin j sits over CQT bin j + 2 + 12 (one block, a 6-semitone margin of 2 bins
    # each): bins 0 and 1 (CQT 14, 15) are semitone 7 (G); the fold starts there and keeps
    # the two whole octaves of 49 bins (the last bin is left out).
    h = torch.zeros(1, 1, 49, 1)
    h[0, 0, 0:2, 0] = torch.tensor([1.0, 3.0])  # semitone 7: mean 2
    h[0, 0, 24:26, 0] = 4.0  # an octave up, the same class: summed, 2 + 4
    h[0, 0, 2:4, 0] = 1.0  # semitone 8 (G#)
    h[0, 0, 48, 0] = 100.0  # outside the whole octaves
    classes = encoder._pitch_classes(h)[0, :, 0]
    assert classes[7].item() == pytest.approx(6.0) and classes[8].item() == pytest.approx(1.0)
    assert classes.sum().item() == pytest.approx(7.0)


def test_a_faster_envelope_moves_the_tempo_curve_up():
    encoder = TempoCNN()
    envelope = encoder.envelope(torch.from_numpy(click_track(100.0, sr=16000, seconds=8.0))[None])
    curve = encoder.tempo_curve(envelope)[0]
    peak = int(curve[24:72].argmax()) + 24  # 60 to 240 BPM
    assert float(encoder.bpm[peak]) == pytest.approx(100.0, rel=0.03)
    rate = torch.tensor([2.0 ** (6 / 24)])
    faster = encoder.tempo_curve(stretch_envelope(envelope, rate, num_frames=600))[0]
    assert int(faster[24:72].argmax()) + 24 == pytest.approx(peak + 6, abs=1)


def test_stretch_envelope_by_hand():
    envelope = torch.arange(6.0)[None]
    out = stretch_envelope(envelope, torch.tensor([1.5]), num_frames=5)
    torch.testing.assert_close(out, torch.tensor([[0.0, 1.5, 3.0, 4.5, 5.0]]))


# --- calibration ------------------------------------------------------------------------------


def _peak_picker(shift: int) -> PestoCNN:
    """A PestoCNN whose output peaks ``shift`` bins above the loudest CQT bin."""
    encoder = PestoCNN(channels=1, depth=1, kernel_size=1, output_kernel=15)
    first = encoder.features[0]
    assert isinstance(first, torch.nn.Conv1d)
    with torch.no_grad():
        first.weight.fill_(1.0)
        encoder.to_logits.weight.zero_()
        encoder.to_logits.weight[0, 0, 7 - shift] = 60.0  # sharp: a peak of the input
    return encoder.eval()


def test_calibration_maps_a_synthetic_440_hz_tone_to_440_hz():
    model = PitchModel(_peak_picker(shift=5))
    assert model.offset == pytest.approx(-5.0, abs=0.5)
    track = model.pitch(harmonic_tone(440.0, sr=16000, seconds=1.0, slope=1.5), 16000)
    cents = 1200 * np.log2(np.median(track.f0[10:-10]) / 440.0)
    assert abs(cents) < 20
    assert track.f0.shape == track.confidence.shape == track.times.shape
    assert ((track.confidence >= 0) & (track.confidence <= 1 + 1e-6)).all()


def test_cadences_and_key_names():
    assert key_name(6, "minor") == "F# minor" and key_name(10, "major") == "Bb major"
    audio = cadence(0, "major", sr=8000)
    assert audio.shape == (8000 * 4,) and np.abs(audio).max() <= 1.0
    with pytest.raises(MusicSSLError, match="mode"):
        cadence(0, "dorian", sr=8000)


@pytest.mark.parametrize("profiles", ["aarden", "krumhansl"])
def test_profile_key_by_hand(profiles):
    major, minor = KEY_PROFILES[profiles]
    assert profile_key(major.roll(7), profiles) == (7, "major")  # G major: the profile from G
    # Pearson correlation: a scale and an offset change nothing.
    assert profile_key(3.0 * minor.roll(9).numpy() + 2.0, profiles) == (9, "minor")
    # A flat C major scale (7 classes equal) is closest to C major's profile or its
    # relative minor's, never to a key with accidentals.
    scale = torch.zeros(12)
    scale[[0, 2, 4, 5, 7, 9, 11]] = 1.0
    assert profile_key(scale, profiles) in {(0, "major"), (9, "minor")}


def test_profile_key_refuses_unknown_profiles():
    with pytest.raises(MusicSSLError, match="'temperley' is not one of aarden, krumhansl"):
        profile_key(torch.ones(12), "temperley")


def test_aarden_profiles_name_a_note_histogram_as_the_corpus_labels_do():
    # The built-in corpus's keys are music21's analysis of the notes played; the same
    # profiles over their duration-weighted pitch-class histogram name the same key.
    from musicssl.builtin.labels import key_label

    rng = np.random.default_rng(0)
    for _ in range(20):
        pitches = rng.integers(55, 80, size=30)
        durations = rng.choice([0.5, 1.0, 1.5, 2.0], size=30)
        histogram = np.bincount(pitches % 12, weights=durations, minlength=12)
        label = mir_eval_key_pair(key_label(pitches, durations))
        assert profile_key(histogram, "aarden") == label


def mir_eval_key_pair(name: str) -> tuple[int, str]:
    """("Db major" ->) (1, "major")."""
    import mir_eval

    tonic, mode = mir_eval.key.split_key_string(name)  # the tonic as a semitone of C
    return int(tonic), mode


def _small_key_model(seed: int = 0) -> KeyModel:
    torch.manual_seed(seed)
    encoder = KeyCNN(sample_rate=8000, hop_length=64, num_octaves=4, channels=4, depth=2,
                     output_kernel=9, input_samples=8000)  # fmt: skip
    return KeyModel(encoder)


def test_the_key_read_out_reads_a_wider_spectrum_with_the_same_weights():
    torch.manual_seed(0)
    trained = KeyCNN(sample_rate=8000, hop_length=64, num_octaves=4, channels=4, depth=2,
                     output_kernel=9, input_samples=8000)  # fmt: skip
    reader = KeyModel(trained).encoder
    assert reader.max_shift == 0 and reader.num_bins == trained.num_bins + 24  # an octave more
    assert reader.kept_bins == trained.kept_bins + 2 * 24  # 2 octaves of classes -> 4
    for name, value in trained.state_dict().items():
        torch.testing.assert_close(reader.state_dict()[name], value)
    # No octave above what the sample rate allows: at 4 kHz, C2 * 2 ** 5 = 2093 Hz is over
    # 0.95 of the 2 kHz Nyquist frequency, so four octaves stay four.
    low_rate = KeyCNN(sample_rate=4000, hop_length=64, num_octaves=4, channels=4, depth=2,
                      output_kernel=9, input_samples=8000)  # fmt: skip
    assert KeyModel(low_rate).encoder.num_bins == low_rate.num_bins


@pytest.mark.parametrize("k", [1, 5, -2])
def test_the_key_read_out_turns_with_the_pitch_class_layer(k):
    model = _small_key_model()
    assert model.template.shape == (4, 12)
    classes = torch.rand(4, 12, 6, generator=torch.Generator().manual_seed(k % 12))
    chroma = model.chroma(classes)
    torch.testing.assert_close(model.chroma(classes.roll(k, dims=1)), chroma.roll(k))
    tonic, mode = profile_key(chroma)
    assert profile_key(chroma.roll(k)) == ((tonic + k) % 12, mode)


def test_the_key_read_out_counts_classes_that_sound_not_how_loud():
    model = _small_key_model()
    rolled = [model.template.roll(c, dims=-1) for c in range(12)]
    # Frame 0: a C and a G, as loud; frame 1: an E at a hundredth of their level.
    frames = torch.stack([rolled[0] + rolled[7], 0.01 * rolled[4]], dim=-1)
    chroma = model.chroma(frames)
    # Each frame is unmixed into its tones (ridge: a little below 1) and scaled to a peak
    # of 1, so each frame counts alike: C, G ~ 1/2 and E ~ 1/2; no other class near them.
    for c in (0, 4, 7):
        assert 0.4 < float(chroma[c]) <= 0.5 + 1e-6
    assert float(chroma[[1, 2, 3, 5, 6, 8, 9, 10, 11]].max()) < 0.2
    # Scaling one frame changes nothing.
    torch.testing.assert_close(model.chroma(frames * torch.tensor([3.0, 50.0])), chroma)


def test_the_tone_template_reads_tones_as_their_own_pitch_class():
    # Even with random weights, a harmonic tone's chroma peaks on its pitch class for most
    # of two octaves of tones (the template is the mean answer to such tones).
    model = _small_key_model()
    midi = range(48, 72)
    tones = [harmonic_tone(440.0 * 2 ** ((m - 69) / 12), sr=8000) for m in midi]
    read = [int(model.chroma(model.classes(tone)).argmax()) for tone in tones]
    assert sum(r == m % 12 for r, m in zip(read, midi, strict=True)) >= 18
    assert 0.0 <= model.cadence_accuracy <= 1.0


# --- methods refuse encoders without bins -----------------------------------------------------


@pytest.mark.parametrize("name", ["pesto", "stone", "tempo"])
def test_methods_refuse_an_encoder_without_their_bins(name):
    from musicssl.encoders import SampleCNN

    with pytest.raises(MusicSSLError, match=f"method {name} needs encoder"):
        build_method(name, SampleCNN(num_blocks=4, channels=[8, 8, 8, 16, 16, 32]))


def _balance_gradient(mode_temperature: float) -> float:
    """Size of the balance term's gradient on logits where channel 0 holds every clip."""
    encoder = KeyCNN(sample_rate=8000, hop_length=32, num_octaves=4, channels=4, depth=2,
                     output_kernel=9, input_samples=243)  # fmt: skip
    logits = torch.zeros(8, 24, 1)
    logits[:, :12] = 3.0  # channel 0 far ahead: at temperature 0.1 its mass is 1 - 1e-13
    grads = []
    for balance_weight in (0.0, 1.0):
        method = build_method("stone", encoder, mode_weight=0.0, balance_weight=balance_weight,
                              mode_temperature=mode_temperature)  # fmt: skip
        leaf = logits.clone().requires_grad_(True)
        classes = torch.zeros(8, 48, 1)
        method.encoder.classes_and_logits = (  # type: ignore[method-assign]
            lambda window, leaf=leaf, classes=classes: (classes, leaf)
        )
        method(torch.randn(4, 243), torch.randn(4, 243))["loss"].backward()
        grads.append(leaf.grad.clone())
    return float((grads[1] - grads[0]).abs().max())


def test_stone_balance_still_pulls_when_one_mode_channel_holds_every_clip():
    # At the tonality temperature the channel masses saturate and the pull vanishes.
    assert _balance_gradient(mode_temperature=0.1) < 1e-6
    assert _balance_gradient(mode_temperature=1.0) > 1e-3


def test_pesto_draws_repeat_from_the_saved_counter():
    encoder = PestoCNN(sample_rate=8000, num_octaves=4, max_shift=6, channels=4, depth=2,
                       output_kernel=15, input_samples=2048)  # fmt: skip
    method = build_method("pesto", encoder)
    x = torch.randn(2, 2048)
    first = method(x)["loss"].item()
    state = {k: v.clone() for k, v in method.state_dict().items()}
    method(x)
    method.load_state_dict(state)
    assert method(x)["loss"].item() != pytest.approx(first)  # count moved on past step 0
    method.draws.load_state_dict({"count": torch.tensor(0)})  # as a checkpoint of step 0
    assert method(x)["loss"].item() == pytest.approx(first)


# --- the verbs' one-line errors ---------------------------------------------------------------


@pytest.mark.parametrize("verb", ["pitch", "key", "tempo"])
def test_verbs_refuse_a_run_of_another_kind(tmp_path, capsys, verb):
    from musicssl.cli import main

    run = untrained_run(tmp_path / "run", TempoCNN() if verb != "tempo" else KeyCNN(), "tempo_cnn"
                    if verb != "tempo" else "key_cnn")  # fmt: skip
    wav = tmp_path / "a.wav"
    from musicssl.audio import save

    save(wav, np.zeros(16000, np.float32), sr=16000)
    extra = ["--out", str(tmp_path / "f0.csv")] if verb == "pitch" else []
    assert main([verb, str(run), str(wav), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"not a {verb} run" in err and str(run) in err
    assert not (tmp_path / "f0.csv").exists()


def test_key_verb_reads_the_key_branch_of_a_combined_run(tmp_path, capsys):
    from musicssl.audio import save
    from musicssl.cli import main
    from musicssl.encoders import Branches

    torch.manual_seed(0)
    key = {"name": "key_cnn", "options": {"channels": 4, "depth": 2, "input_samples": 16000}}
    run = untrained_run(tmp_path / "run", Branches(branches={"key": key}), "branches")
    wav = tmp_path / "cadence.wav"
    save(wav, cadence(2, "major", sr=16000), sr=16000)
    assert main(["key", str(run), str(wav)]) == 0
    path, name = capsys.readouterr().out.strip().split("\t")
    assert path == str(wav) and name.split()[0] in PITCH_NAMES and name.split()[1] in MODES
    assert main(["key", str(run), str(wav), "--profiles", "krumhansl"]) == 0
    assert capsys.readouterr().out.strip().split("\t")[1].split()[1] in MODES
    save(wav, cadence(2, "major", sr=16000)[:160], sr=16000)  # 10 ms: too few notes
    assert main(["key", str(run), str(wav)]) == 1
    assert "a key needs a few notes, 2 s at least" in capsys.readouterr().err


def test_pitch_verb_names_a_bad_audio_file_in_one_line(tmp_path, capsys):
    from musicssl.cli import main

    run = untrained_run(tmp_path / "run", _peak_picker(shift=0), "pesto_cnn")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEnot really audio")
    assert main(["pitch", str(run), str(bad), "--out", str(tmp_path / "f0.csv")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.wav" in err
    assert not (tmp_path / "f0.csv").exists()


def test_pitch_verb_writes_time_f0_confidence(tmp_path, capsys):
    from musicssl.audio import save
    from musicssl.cli import main

    run = untrained_run(tmp_path / "run", _peak_picker(shift=3), "pesto_cnn")
    wav = tmp_path / "a440.wav"
    save(wav, harmonic_tone(440.0, sr=16000, seconds=1.0, slope=1.5), sr=16000)
    assert main(["pitch", str(run), str(wav), "--out", str(tmp_path / "f0.csv")]) == 0
    lines = (tmp_path / "f0.csv").read_text().splitlines()
    assert lines[0] == "time,f0,confidence" and len(lines) == 1 + 1 + 16000 // 128
    # A hop the constant-Q transform cannot take names the option.
    argv = ["pitch", str(run), str(wav), "--out", str(tmp_path / "f0.csv"), "--hop-length", "7"]
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith("musicssl: error: --hop-length 7: CQT: hop_length")
    f0 = np.array([float(line.split(",")[1]) for line in lines[20:-20]])
    assert abs(1200 * np.log2(np.median(f0) / 440.0)) < 20


def test_pitch_verb_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    from musicssl.audio import save
    from musicssl.cli import main

    run = untrained_run(tmp_path / "run", _peak_picker(shift=3), "pesto_cnn")
    wav = tmp_path / "a440.wav"
    save(wav, harmonic_tone(440.0, sr=16000, seconds=0.5), sr=16000)
    audio_bytes = wav.read_bytes()
    notes = tmp_path / "notes.csv"
    notes.write_text("my own notes\n")
    (tmp_path / "link.csv").symlink_to(notes)
    refused = {
        wav: "exists and is not a pitch CSV",
        notes: "is not a pitch CSV",
        tmp_path / "link.csv": "is a symbolic link",
    }
    for out, reason in refused.items():
        assert main(["pitch", str(run), str(wav), "--out", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(out) in err and reason in err
    assert wav.read_bytes() == audio_bytes and notes.read_text() == "my own notes\n"
    assert (tmp_path / "link.csv").is_symlink()
    # Its own CSV, from an earlier call, it replaces.
    out = tmp_path / "f0.csv"
    assert main(["pitch", str(run), str(wav), "--out", str(out)]) == 0
    assert main(["pitch", str(run), str(wav), "--out", str(out)]) == 0


def test_pitch_verb_writes_a_folder_of_csvs_for_several_files(tmp_path, capsys):
    from musicssl.audio import save
    from musicssl.cli import main

    run = untrained_run(tmp_path / "run", _peak_picker(shift=3), "pesto_cnn")
    songs = tmp_path / "songs"
    for name, f0 in (("a.wav", 220.0), ("deep/b.wav", 440.0), ("deep/b.flac", 330.0)):
        (songs / name).parent.mkdir(parents=True, exist_ok=True)
        save(songs / name, harmonic_tone(f0, sr=16000, seconds=0.5, slope=1.5), sr=16000)
    (songs / "deep" / "broken.wav").write_bytes(b"RIFF0000WAVEnot really audio")
    alone = tmp_path / "alone.wav"
    save(alone, harmonic_tone(440.0, sr=16000, seconds=0.5), sr=16000)
    out = tmp_path / "f0"
    assert main(["pitch", str(run), str(songs), str(alone), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.csv"))
    assert written == ["a.wav.csv", "alone.wav.csv", "deep/b.flac.csv", "deep/b.wav.csv"]
    assert (
        f"{len((out / 'a.wav.csv').read_text().splitlines()) - 1} frames: {out / 'a.wav.csv'}"
        in captured.out
    )
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"musicssl: skipped {songs / 'deep' / 'broken.wav'}")
    f0 = [
        float(line.split(",")[1])
        for line in (out / "deep/b.flac.csv").read_text().splitlines()[10:-10]
    ]
    assert abs(1200 * np.log2(np.median(f0) / 330.0)) < 20
    # --out must then be a folder: a file there is refused before any work, and kept.
    mine = tmp_path / "mine.txt"
    mine.write_text("mine\n")
    assert main(["pitch", str(run), str(songs), "--out", str(mine)]) == 1
    err = capsys.readouterr().err
    assert "exists and is not a folder" in err and "names the folder of their CSVs" in err
    assert mine.read_text() == "mine\n"


def test_the_pitch_read_out_takes_audio_shorter_than_a_hop(tmp_path):
    from musicssl.pitch import load

    run = untrained_run(tmp_path / "run", _peak_picker(shift=0), "pesto_cnn")
    track = load(run).pitch(np.full(10, 0.1, np.float32), 16000)
    assert len(track.f0) == 1 and len(track.times) == 1


def test_silent_frames_read_unvoiced_and_silent_audio_is_refused(tmp_path):
    from musicssl.pitch import load

    model = load(untrained_run(tmp_path / "run", _peak_picker(shift=3), "pesto_cnn"))
    tone = harmonic_tone(440.0, sr=16000, seconds=0.5, slope=1.5)
    gap = np.zeros(8000, np.float32)  # half a second of digital silence between two tones
    track = model.pitch(np.concatenate([tone, gap, tone]), 16000)
    hop = model.hop_length
    # Frame t is centred on sample t * hop; its hop samples lie wholly in the gap for
    # t * hop - hop // 2 >= 8000 and t * hop + hop // 2 <= 16000: at hop 128, t = 63 ... 124.
    centres = np.round(track.times * 16000)
    inside = (centres - hop // 2 >= 8000) & (centres + hop // 2 <= 16000)
    assert hop == 128 and inside.sum() == 62
    assert (track.f0[inside] == 0).all() and (track.confidence[inside] == 0).all()
    voiced = track.f0[(track.times > 0.1) & (track.times < 0.4)]
    assert abs(1200 * np.log2(np.median(voiced) / 440.0)) < 20
    assert (track.f0[~inside] > 0).all()
    with pytest.raises(MusicSSLError, match="pitch: the audio is silent"):
        model.pitch(np.zeros(16000, np.float32), 16000)


def test_tempo_verb_reads_the_tempo_branch_of_a_combined_run(tmp_path, capsys):
    from musicssl.audio import save
    from musicssl.cli import main
    from musicssl.encoders import Branches

    torch.manual_seed(0)
    tempo = {"name": "tempo_cnn", "options": {}}
    run = untrained_run(tmp_path / "run", Branches(branches={"tempo": tempo}), "branches")
    wav = tmp_path / "clicks.wav"
    save(wav, click_track(120.0, sr=16000), sr=16000)
    assert main(["tempo", str(run), str(wav)]) == 0
    path, bpm, confidence = capsys.readouterr().out.strip().split("\t")
    assert path == str(wav) and 20.0 < float(bpm) < 400.0 and 0 <= float(confidence) <= 1
    save(tmp_path / "short.wav", click_track(120.0, sr=16000, seconds=0.2), sr=16000)
    assert main(["tempo", str(run), str(tmp_path / "short.wav")]) == 1
    assert "a tempo needs a few beats, 2 s at least" in capsys.readouterr().err


def test_the_tempo_confidence_is_the_distributions_share_near_the_tempo_read(monkeypatch):
    from musicssl.readouts import TempoModel

    torch.manual_seed(0)
    model = TempoModel(TempoCNN(), prior_bpm=None)
    bins = model.encoder.output_bins
    peaked = torch.full((bins,), 0.2 / bins, dtype=torch.float64)
    peaked[30] += 0.6
    peaked[[29, 31]] += 0.1
    flat = torch.full((bins,), 1 / bins, dtype=torch.float64)
    clip = np.random.default_rng(0).standard_normal(3 * 16000).astype(np.float32) * 0.1
    for probs, confidence in ((peaked, 0.8 + 3 * 0.2 / bins), (flat, 3 / bins)):
        monkeypatch.setattr(model, "_distribution", lambda signal, probs=probs: probs)
        read = model.read(clip, 16000)
        assert read.confidence == pytest.approx(confidence)
        assert read.bpm == model.tempo(clip, 16000)
    # The peaked distribution reads bin 30, shifted by the calibration.
    monkeypatch.setattr(model, "_distribution", lambda signal: peaked)
    expected = model._lowest * 2 ** ((30 + model.offset) / model.encoder.bins_per_octave)
    assert model.read(clip, 16000).bpm == pytest.approx(expected)


@pytest.mark.parametrize("verb", ["key", "tempo"])
def test_read_out_verbs_refuse_silence_and_say_when_nothing_was_read(tmp_path, capsys, verb):
    from musicssl.audio import save
    from musicssl.cli import main

    encoder, name = (
        (KeyCNN(channels=4, depth=2), "key_cnn") if verb == "key" else (TempoCNN(), "tempo_cnn")
    )
    run = untrained_run(tmp_path / "run", encoder, name)
    folder = tmp_path / "audio"
    save(folder / "silent.wav", np.zeros(16000, np.float32), sr=16000)
    (folder / "bad.wav").write_bytes(b"RIFF0000WAVEnot really audio")
    assert main([verb, str(run), str(folder / "silent.wav")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("the audio is silent (peak below -90 dBFS)") and "silent.wav" in err
    assert main([verb, str(run), str(folder)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and "skipped" in lines[0] and "skipped" in lines[1]
    assert lines[2].endswith(f"{verb}: no audio could be read (2 files skipped)")
    (tmp_path / "empty").mkdir()
    assert main([verb, str(run), str(tmp_path / "empty")]) == 1
    assert "no audio files in" in capsys.readouterr().err
    # Files listed (a shell's glob, say): a bad one is skipped, the others are read.
    save(folder / "noise.wav", np.random.default_rng(0).uniform(-0.5, 0.5, 32000), sr=16000)
    listed = [folder / "bad.wav", folder / "gone.wav", folder / "noise.wav"]
    assert main([verb, str(run), *map(str, listed)]) == 0
    captured = capsys.readouterr()
    assert [line.split("\t")[0] for line in captured.out.splitlines()] == [str(listed[2])]
    assert captured.err.splitlines()[1] == f"musicssl: skipped {listed[1]}: no such file or folder"
    assert captured.err.splitlines()[0].startswith(f"musicssl: skipped {listed[0]}")


# --- the equivariance probe -------------------------------------------------------------------


def test_equivariance_probe_tells_an_invariant_embedding_from_a_pitch_tracking_one():
    from musicssl.evaluate.equivariance import equivariance_scores
    from musicssl.evaluate.report.pages import _equivariance_rows

    clips = [gain * harmonic_tone(f0, sr=8000, seconds=1.0)
             for gain, f0 in ((0.2, 200.0), (0.6, 300.0), (1.8, 450.0))]  # fmt: skip

    def loudness(x: np.ndarray) -> np.ndarray:  # which clip, whatever its pitch or tempo
        peak = np.abs(x).max()
        return np.array([peak < 0.2, 0.2 <= peak < 0.5, peak >= 0.5], dtype=float)

    def spectrum(x: np.ndarray) -> np.ndarray:
        return np.abs(np.fft.rfft(x, n=8000))[:2000]

    invariant = equivariance_scores(loudness, clips, sr=8000)
    assert all(v["invariance"] == pytest.approx(1.0) for v in invariant.values())
    tracking = equivariance_scores(spectrum, clips, sr=8000)
    assert tracking["pitch +2 st"]["invariance"] < 0.5
    assert tracking["pitch +2 st"]["distance"] > tracking["tempo x1.06"]["distance"]
    rows = _equivariance_rows({"equivariance": tracking})
    assert [row[0] for row in rows] == list(tracking) and len(rows[0]) == 4
    with pytest.raises(MusicSSLError, match="two clips"):
        equivariance_scores(spectrum, clips[:1], sr=8000)


def test_a_raised_pitch_is_embedded_over_music_not_the_silence_it_leaves_at_the_end():
    from musicssl.evaluate.equivariance import equivariance_scores

    clips = [gain * harmonic_tone(f0, sr=8000, seconds=1.25)
             for gain, f0 in ((0.2, 200.0), (0.6, 300.0), (1.8, 450.0))]  # fmt: skip

    def ending(x: np.ndarray) -> np.ndarray:  # the level of the last eighth: which clip
        return np.array([np.sqrt(np.mean(x[-len(x) // 8 :] ** 2)), 0.05])

    whole = equivariance_scores(ending, clips, sr=8000)  # the raised clip ends in silence
    assert whole["pitch +2 st"]["invariance"] < 0.5
    cut = equivariance_scores(ending, clips, sr=8000, length=8000)  # a second of each
    assert cut["pitch +2 st"]["invariance"] > 0.9 and cut["tempo x1.06"]["invariance"] > 0.9
