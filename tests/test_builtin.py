"""The built-in corpus: labels are checked against the rendered audio and against music21.

One ``tiny`` corpus is built per test module; every label test reads the audio it describes
(or music21's own reading of the score), never the builder's intermediate data.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musicssl.builtin import SIZES, build_corpus, drums, labels, summarize
from musicssl.builtin.render import Event, Synth, check_renderer
from musicssl.builtin.styles import STYLES as STYLE_SPECS
from musicssl.errors import MusicSSLError

SR = 16000
STYLES = {
    "bach_chorale",
    "palestrina_mass",
    "monteverdi_madrigal",
    "string_quartet",
    "fiddle_tune",
    "german_folk_song",
}
STYLES_PHRASES = {name: spec.phrase.lower() for name, spec in STYLE_SPECS.items()}
FIELDS = {
    "clip_id", "path", "duration", "sr", "channels", "sha256", "split", "style", "composer",
    "piece_id", "title", "source", "source_number", "excerpt_start", "excerpt_end", "score_parts",
    "key", "tempo", "metre", "transpose", "programs", "instruments", "families", "drums",
    "drum_kit", "velocity", "monophonic", "caption", "f0", "f0_hop",
}  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("builtin") / "tiny"
    summary = build_corpus(out, size="tiny", seed=0, workers=2, progress=False)
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return out, [json.loads(line) for line in lines], summary


# --- music21's own reading of a clip's excerpt (independent of the builder's note table) ---

_SCORES: dict = {}


def _score(record):
    """The clip's score parsed by music21, ties stripped by music21."""
    import music21
    from music21 import converter

    key = (record["source"], record["source_number"])
    if key not in _SCORES:
        path = Path(music21.__file__).parent / "corpus" / record["source"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if record["source_number"] is None:
                score = converter.parse(path, forceSource=True)
            else:
                score = converter.parse(path, forceSource=True, number=record["source_number"])
        _SCORES[key] = score.stripTies()
    return _SCORES[key]


def _excerpt(record):
    """The notes and chords of the clip's parts with onsets in the excerpt, from music21."""
    from music21 import harmony

    selected = []
    for index, part in enumerate(_score(record).parts):
        if index not in record["score_parts"]:
            continue
        for element in part.flatten().notes:
            if isinstance(element, harmony.ChordSymbol) or element.duration.isGrace:
                continue
            if record["excerpt_start"] <= element.offset < record["excerpt_end"]:
                selected.append(element)
    return selected


# --- an f0 estimator of our own: YIN for the period, refined on the harmonic spectrum -------


def estimate_f0(audio, sr, times, *, fmin=50.0, fmax=2000.0, window=1024):
    """f0 (Hz) of the ``window`` samples centred on each time; 0 where no period is found."""
    integration = window // 2
    tau_max = int(sr / fmin)
    tau_min = int(sr / fmax)
    nfft = 1 << 15
    hann = np.hanning(window)
    freqs = np.arange(nfft // 2 + 1) * sr / nfft
    harmonics = np.arange(1, 9)
    estimates = np.zeros(len(times))
    for i, t in enumerate(times):
        centre = int(round(t * sr))
        frame = audio[centre - window // 2 : centre + window // 2].astype(np.float64)
        if len(frame) < window:
            continue
        # Cumulative mean normalised difference (de Cheveigne & Kawahara 2002).
        acf = np.correlate(frame[: integration + tau_max], frame[:integration], mode="valid")
        energy = np.concatenate([[0.0], np.cumsum(frame**2)])
        lags = np.arange(tau_max + 1)
        diff = acf[0] + energy[lags + integration] - energy[lags] - 2 * acf
        cmnd = np.ones_like(diff)
        cmnd[1:] = diff[1:] * lags[1:] / np.maximum(np.cumsum(diff[1:]), 1e-12)
        dips = np.flatnonzero(cmnd[tau_min:] < 0.15)
        if len(dips) == 0:
            continue
        tau = dips[0] + tau_min
        while tau < tau_max and cmnd[tau + 1] < cmnd[tau]:
            tau += 1
        coarse = sr / tau
        # Refine to a cent on the harmonic comb of a finely sampled spectrum.
        spectrum = np.abs(np.fft.rfft(frame * hann, nfft))
        grid = coarse * 2.0 ** (np.arange(-80, 81) / 1200.0)
        positions = grid[:, None] * harmonics[None, :]
        comb = np.where(positions < sr / 2, np.interp(positions, freqs, spectrum), 0.0)
        estimates[i] = grid[int(np.argmax(comb.sum(axis=1)))]
    return estimates


def onset_strength(audio, sr, *, hop=160, window=512):
    """Spectral flux of log magnitudes. Returns (frame centre times, flux)."""
    count = 1 + (len(audio) - window) // hop
    index = np.arange(window)[None, :] + hop * np.arange(count)[:, None]
    magnitude = np.log1p(100 * np.abs(np.fft.rfft(audio[index] * np.hanning(window), axis=1)))
    flux = np.concatenate([[0.0], np.maximum(np.diff(magnitude, axis=0), 0).sum(axis=1)])
    return (np.arange(count) * hop + window / 2) / sr, flux


# --- the manifest and the audio files -------------------------------------------------------


def test_manifest_matches_audio_files(corpus):
    out, records, summary = corpus
    assert summary["num_clips"] == len(records) == 36
    for record in records:
        assert set(record) == FIELDS
        info = sf.info(out / record["path"])
        assert info.samplerate == record["sr"] == SR
        assert info.channels == record["channels"] == 1
        assert info.subtype == "PCM_16"
        assert info.frames / info.samplerate == pytest.approx(record["duration"], abs=1e-6)
        assert 9.5 <= record["duration"] <= 10.5
        assert record["path"] == f"audio/{record['clip_id']}.wav"
        assert record["sha256"] == hashlib.sha256((out / record["path"]).read_bytes()).hexdigest()
        audio, _ = sf.read(out / record["path"])
        peak = np.abs(audio).max()
        rms_db = 20 * np.log10(np.sqrt(np.mean(audio**2)))
        assert peak <= 10 ** (-1 / 20) + 1 / 32768, record["clip_id"]  # headroom, no clipping
        assert -23.0 < rms_db < -19.0, record["clip_id"]  # loudness-normalised, not silent
        assert len(record["programs"]) == len(record["instruments"]) == len(record["families"])
        text = record["caption"]
        tempo_named = any(word in text.lower() for word in labels.tempo_words(record["tempo"]))
        assert f"{record['tempo']} BPM" in text or tempo_named, text
        assert f" {record['key']}" in text and STYLES_PHRASES[record["style"]] in text.lower()
        assert ("drum" in text.lower()) == record["drums"], text


def test_splits_are_disjoint_by_piece_and_cover_every_style(corpus):
    _, records, summary = corpus
    pieces_of = {split: {r["piece_id"] for r in records if r["split"] == split} for split in
                 ("train", "valid", "test")}  # fmt: skip
    assert not pieces_of["train"] & pieces_of["valid"]
    assert not pieces_of["train"] & pieces_of["test"]
    assert not pieces_of["valid"] & pieces_of["test"]
    assert {r["style"] for r in records} == STYLES
    for style in STYLES:
        assert {r["split"] for r in records if r["style"] == style} == {"train", "valid", "test"}
    assert summary["styles"] == {style: 6 for style in STYLES}
    assert summary["splits"] == {"train": 12, "valid": 12, "test": 12}
    assert summarize(Path(corpus[0]) / "manifest.jsonl")["num_clips"] == 36


@pytest.fixture(scope="module", params=["usual", "transfer"])
def labelled(request, corpus):
    """The usual clips, then the transfer renders of the test clips: labels hold on both."""
    out, records, _ = corpus
    if request.param == "transfer":
        out = out / "transfer"
        records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return out, records


def test_f0_label_matches_the_rendered_pitch(labelled):
    out, records = labelled
    monophonic = [r for r in records if r["f0"]]
    assert len(monophonic) >= len(records) // 6
    all_errors = []
    for record in monophonic:
        assert record["monophonic"] and not record["drums"] and len(record["programs"]) == 1
        assert record["f0_hop"] == 0.01
        audio, sr = sf.read(out / record["path"])
        f0 = np.load(out / record["f0"], allow_pickle=False)
        assert f0.shape == (int(round(record["duration"] / 0.01)),)
        times = np.arange(len(f0)) * 0.01
        # Judge the steady part of notes: frames whose 64 ms window holds one labelled pitch
        # and no attack (a bow or a recorder's chiff takes up to 70 ms to settle). Attacks
        # are where music21's score puts the notes, at the labelled tempo; that includes
        # repeated notes, which the f0 track cannot show.
        onsets = np.unique([float(e.offset) for e in _excerpt(record)])
        onsets = (onsets - record["excerpt_start"]) * 60.0 / record["tempo"]
        changes = times[np.flatnonzero(np.diff(f0) != 0) + 1]
        judged = (f0 > 0) & (times >= 0.04) & (times <= record["duration"] - 0.04)
        for moment in np.concatenate([onsets, changes]):
            judged &= ~((times > moment - 0.035) & (times < moment + 0.07))
        assert judged.sum() > 150, record["clip_id"]
        estimate = estimate_f0(audio, sr, times[judged])
        cents = 1200 * np.log2(np.maximum(estimate, 1e-3) / f0[judged])
        within = np.abs(cents) <= 20
        assert within.mean() >= 0.95, (record["clip_id"], within.mean())
        assert np.median(np.abs(cents)) < 8, record["clip_id"]
        all_errors.append(within)
    assert np.concatenate(all_errors).mean() >= 0.98


def test_key_label_is_music21_analysis_of_the_transposed_excerpt(labelled):
    from music21 import chord, note, stream

    _, records = labelled
    transposed = [r for r in records if r["transpose"] != 0]
    assert len(transposed) >= 0.55 * len(records)
    for record in transposed:
        excerpt = stream.Stream()
        for element in _excerpt(record):
            if record["monophonic"] and isinstance(element, chord.Chord):
                # A solo plays the top note of a chord.
                top = max(element.pitches, key=lambda p: p.midi)
                element = note.Note(top, quarterLength=element.quarterLength)
            excerpt.insert(element.offset, element.__deepcopy__())
        key = excerpt.transpose(record["transpose"]).analyze("key")
        expected = f"{key.tonic.name.replace('-', 'b')} {key.mode}"
        assert record["key"] == expected, record["clip_id"]


def test_tempo_label_agrees_with_note_onsets_in_the_audio(labelled):
    out, records = labelled
    ratios = np.array([0.92, 0.96, 1.0, 1.04, 1.08])
    best_at_label = 0
    for record in records:
        offsets = np.unique([float(e.offset) for e in _excerpt(record)])
        offsets = offsets - record["excerpt_start"]
        audio, sr = sf.read(out / record["path"])
        times, flux = onset_strength(audio, sr)

        def strength(bpm, offsets=offsets, times=times, flux=flux):
            # Onsets predicted by the score at this tempo; how strong the audio's are there.
            predicted = offsets * 60.0 / bpm
            predicted = predicted[(predicted > 0.05) & (predicted < 9.8)]
            peaks = [flux[np.abs(times - t) <= 0.03].max() for t in predicted]
            return np.mean(peaks) / np.mean(flux)

        scores = [strength(record["tempo"] * ratio) for ratio in ratios]
        best_at_label += int(np.argmax(scores) == 2)
    # Slow attacks (choir, bowed strings) blur a few clips; the label must win nearly always.
    assert best_at_label >= 0.9 * len(records)


# --- the renderer --------------------------------------------------------------------------


def test_a_scheduled_note_starts_at_its_sample():
    synth = Synth(SR)
    assert synth.grid == 64  # 4 ms: three 64-sample blocks of the synthesizer at 48 kHz
    assert Synth(48000).grid == 64 and Synth(22050).grid == 147  # 147 = 5 * 64 * 22050 / 48000
    assert (synth.snap(95.9), synth.snap(96.1), synth.snap(-10)) == (64, 128, 0)
    two_ms = int(0.002 * SR)
    onsets = [0, 62 * 64, 65 * 64]  # samples on the grid
    for program in (6, 105):  # harpsichord and banjo: samples with no lead-in
        for start in onsets:
            audio = synth.render([Event(start, 1, 0, 67, 0.8)], {0: program}, start + 4000)
            peak = np.abs(audio).max()
            # Before the note only the resampler's pre-ringing, 70 dB down.
            assert np.abs(audio[:start]).max(initial=0.0) < 3e-4 * peak, (program, start)
            loud = np.flatnonzero(np.abs(audio) > 0.1 * peak)[0]
            assert start <= loud < start + two_ms, (program, start, loud - start)
    # Any instrument: a note moved by k grid steps is the same audio moved by k * 64 samples.
    reference = synth.render([Event(0, 1, 0, 60, 0.8)], {0: 0}, 8000)
    for start in onsets[1:]:
        moved = synth.render([Event(start, 1, 0, 60, 0.8)], {0: 0}, start + 8000)
        np.testing.assert_allclose(moved[start:], reference, rtol=0, atol=1e-6)
    # In a mix, a second note adds nothing before its sample.
    first = [Event(0, 1, 0, 60, 0.8), Event(1600, 0, 0, 60)]
    second = [Event(3968, 1, 1, 67, 0.8), Event(7168, 0, 1, 67)]
    alone = synth.render(first, {0: 0, 1: 6}, 8000)
    added = synth.render(first + second, {0: 0, 1: 6}, 8000) - alone
    assert np.abs(added[:3968]).max() < 1e-3 * np.abs(added).max()
    assert np.abs(added[3968 : 3968 + two_ms]).max() > 0.1 * np.abs(added).max()
    # Rendering is a function of the events alone, not of what the synthesizer played before.
    np.testing.assert_array_equal(synth.render(first, {0: 0, 1: 6}, 8000), alone)
    # A note off the grid would start elsewhere than its label says: refused.
    with pytest.raises(MusicSSLError, match="multiple of 64"):
        synth.render([Event(100, 1, 0, 60, 0.8)], {0: 0}, 8000)


def test_a_tone_renders_at_its_pitch():
    # A3 and A4 on a harpsichord (steady pitch, no vibrato), one second: 220 and 440 Hz.
    synth = Synth(SR)
    for key, hertz in ((57, 220.0), (69, 440.0)):
        events = [Event(0, 1, 0, key, 0.8), Event(16000, 0, 0, key)]
        audio = synth.render(events, {0: 6}, 16000)
        f0 = estimate_f0(audio, SR, np.arange(0.3, 0.9, 0.1))
        assert np.all(np.abs(1200 * np.log2(f0 / hertz)) < 10), (key, f0)


def test_a_render_that_would_clip_is_rendered_again_quieter(monkeypatch):
    from musicssl.builtin import render

    volumes = []
    original = render._midi_file

    def spy(*args, **kwargs):
        volumes.append(kwargs["volume"])
        return original(*args, **kwargs)

    monkeypatch.setattr(render, "_midi_file", spy)
    synth = Synth(SR)
    # 15 channels x 8 orchestra hits at full velocity overflow 16 bits at the default volume.
    channels = [channel for channel in range(16) if channel != 9]
    loud = [Event(0, 1, channel, key, 1.0) for channel in channels for key in range(36, 60, 3)]
    synth.render(loud, dict.fromkeys(channels, 55), 4000)
    assert volumes == [render.DEFAULT_VOLUME, render.DEFAULT_VOLUME // 2]
    volumes.clear()
    synth.render(loud[:8], {0: 55}, 4000)  # one channel: no second render
    assert volumes == [render.DEFAULT_VOLUME]


def test_missing_renderer_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "midirenderer", None)
    with pytest.raises(MusicSSLError, match="pip install midirenderer"):
        check_renderer()


# --- labels built from hand-computed cases ---------------------------------------------------


def test_drum_pattern_follows_the_metre():
    # 6/8: two dotted-quarter beats; kick on the bar line, snare on the second beat,
    # hi-hat on every eighth.
    hits = drums.bar_pattern(6, 8, 0)
    assert [(p, k) for p, k, _ in hits if k != drums.CLOSED_HAT] == [
        (0.0, drums.KICK),
        (1.5, drums.SNARE),
    ]
    assert [p for p, k, _ in hits if k == drums.CLOSED_HAT] == [0, 0.5, 1.0, 1.5, 2.0, 2.5]
    # 3/4 with a pickup bar of one beat: hits only from the pickup's offset on.
    measures = np.array([[0.0, -2.0, 3, 4], [1.0, 1.0, 3, 4]])
    kicks = [o for o, k, _ in drums.drum_hits(measures, 0.0, 4.0, 1) if k == drums.KICK]
    assert kicks == [1.0]


def test_caption_and_f0_track_from_hand_computed_labels():
    text = labels.caption(
        phrase="Bach chorale",
        composer="Bach",
        key="F# minor",
        programs=[68, 41, 42, 70],
        tempo=92,
        metre="4/4",
        drums=True,
    )
    assert text == (
        "A Bach chorale in F# minor for oboe, viola, cello and bassoon at 92 BPM in 4/4, "
        "with drums."
    )
    assert (
        labels.caption(phrase="string quartet movement", composer="Haydn", key="D major",
                       programs=[40, 40, 41, 42], tempo=120, metre="3/4", drums=False)
        == "A Haydn string quartet movement in D major for two violins, viola and cello "
        "at 120 BPM in 3/4."
    )  # fmt: skip
    # A4 from 0.1 s to 0.25 s, then C5 from 0.25 s to 0.3 s, in a 0.4 s clip.
    f0 = labels.f0_track(np.array([0.1, 0.25]), np.array([0.25, 0.3]), np.array([69, 72]), 0.4)
    expected = np.zeros(40)
    expected[10:25] = 440.0
    expected[25:30] = 440.0 * 2 ** (3 / 12)
    np.testing.assert_allclose(f0, expected, rtol=1e-6)


def test_drawn_captions_vary_per_clip_and_keep_the_labels():
    facts = dict(phrase="Bach chorale", composer="Bach", key="F# minor", programs=[68, 41, 42, 70],
                 tempo=60, metre="3/4", drums=False)  # fmt: skip
    drawn = [labels.caption(**facts, rng=np.random.default_rng(seed)) for seed in range(40)]
    assert drawn == [labels.caption(**facts, rng=np.random.default_rng(s)) for s in range(40)]
    assert len(set(drawn)) >= 20  # sentence patterns and words differ between clips
    for text in drawn:
        assert "F# minor" in text and "Bach chorale" in text and "drum" not in text.lower()
        assert "60 BPM" in text or any(w in text.lower() for w in ("slow", "unhurried", "stately"))
        assert text[0].isupper() and text.endswith(".")
    assert any("waltz time" in t or "triple time" in t or "three beats" in t for t in drawn)
    assert any("reeds" in t and "strings" in t for t in drawn)  # families instead of names
    with_drums = labels.caption(**{**facts, "drums": True}, drum_kit="jazz",
                                rng=np.random.default_rng(0))  # fmt: skip
    assert "drum" in with_drums
    assert labels.tempo_words(65) == ("slow", "unhurried", "stately")
    assert labels.tempo_words(140) == ("fast", "quick", "energetic")
    samples = labels.caption_samples(300, seed=0)
    assert samples == labels.caption_samples(300, seed=0) and len(set(samples)) == 300


def test_corpus_captions_use_several_sentence_forms(corpus):
    _, records, _ = corpus
    captions = [record["caption"] for record in records]
    assert len(set(captions)) == len(captions)
    openings = {text.split(" ")[0] for text in captions}
    assert len(openings) >= 3  # "A", "An", a tempo word, "The" (a solo part) ...


# --- determinism, caching, resuming ------------------------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and ".cache" not in path.parts
    }


def test_same_seed_gives_identical_files_whatever_the_workers(corpus, tmp_path):
    out, _, _ = corpus
    again = tmp_path / "again"
    build_corpus(again, size="tiny", seed=0, workers=1, progress=False)
    assert _files(again) == _files(out)

    # A complete folder: nothing is done again.
    before = {p: p.stat().st_mtime_ns for p in again.rglob("*") if p.is_file()}
    summary = build_corpus(again, size="tiny", seed=0, workers=1, progress=False)
    assert summary["cached"] and summary["num_clips"] == 36
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*") if p.is_file()} == before

    # A killed build: no manifest, some clips written without their record, some missing.
    records = sorted((again / ".cache" / "clips").glob("*.json"))
    (again / "manifest.jsonl").unlink()
    for record in records[:3]:
        record.unlink()
    lost = [json.loads(r.read_text()) for r in records[3:5]]
    for record in lost:
        (again / record["path"]).unlink()
    kept = again / json.loads(records[10].read_text())["path"]
    kept_mtime = kept.stat().st_mtime_ns
    summary = build_corpus(again, size="tiny", seed=0, workers=1, progress=False)
    assert not summary["cached"]
    assert kept.stat().st_mtime_ns == kept_mtime  # finished clips are not rendered again
    assert _files(again) == _files(out)


def test_other_settings_in_a_built_folder_are_refused(corpus):
    out, _, _ = corpus
    with pytest.raises(MusicSSLError, match="holds the tiny corpus of seed 0, not the tiny "
                       "corpus of seed 1; ask for what it holds"):  # fmt: skip
        build_corpus(out, size="tiny", seed=1, progress=False)
    with pytest.raises(MusicSSLError, match="size="):
        build_corpus(out, size="huge", progress=False)
    with pytest.raises(MusicSSLError, match="workers=0"):
        build_corpus(out, size="tiny", workers=0, progress=False)
    assert {"tiny", "small", "full"} <= set(SIZES)


# --- the transfer renders -----------------------------------------------------------------


def test_transfer_renders_use_no_family_of_the_pretraining_split(corpus):
    from musicssl.builtin import instruments

    out, records, summary = corpus
    transfer = [
        json.loads(line) for line in (out / "transfer/manifest.jsonl").read_text().splitlines()
    ]
    assert summary["transfer_clips"] == len(transfer) == 12
    usual_families = {family for r in records for family in r["families"]}
    transfer_families = {family for r in transfer for family in r["families"]}
    assert usual_families <= set(instruments.CORPUS_FAMILIES)
    assert transfer_families <= set(instruments.TRANSFER_FAMILIES)
    assert not usual_families & transfer_families
    assert len(transfer_families) >= 3  # several held-out families, not one stand-in
    # Every pool either side draws from keeps to its families, so any build keeps them apart.
    pools = [*instruments.ENSEMBLES.values(), instruments.TUNED_SOLO_PROGRAMS]
    held_out = [*instruments.TRANSFER_ENSEMBLES.values(), instruments.TRANSFER_FOLK,
                instruments.TRANSFER_SOLO_PROGRAMS]  # fmt: skip
    assert {instruments.family(p) for pool in pools for p in pool} <= set(
        instruments.CORPUS_FAMILIES
    )
    assert {instruments.family(p) for pool in held_out for p in pool} <= set(
        instruments.TRANSFER_FAMILIES
    )
    assert not set(instruments.CORPUS_FAMILIES) & set(instruments.TRANSFER_FAMILIES)


def test_a_transfer_render_is_its_test_clip_on_other_instruments(corpus):
    out, records, _ = corpus
    test = {r["clip_id"]: r for r in records if r["split"] == "test"}
    transfer = [
        json.loads(line) for line in (out / "transfer/manifest.jsonl").read_text().splitlines()
    ]
    assert [r["clip_id"] for r in transfer] == list(test)
    kept = ("split", "style", "piece_id", "excerpt_start", "excerpt_end", "score_parts", "key",
            "tempo", "metre", "transpose", "drums", "drum_kit", "velocity", "monophonic", "path",
            "f0", "f0_hop")  # fmt: skip
    for record in transfer:
        original = test[record["clip_id"]]
        assert set(record) == FIELDS
        assert {k: record[k] for k in kept} == {k: original[k] for k in kept}
        assert len(record["programs"]) == len(original["programs"])
        assert not set(record["programs"]) & set(original["programs"])
        assert record["caption"] != original["caption"]
        if record["f0"]:
            np.testing.assert_array_equal(
                np.load(out / "transfer" / record["f0"]), np.load(out / original["f0"])
            )
        # The same notes at the same times, not the same sound.
        ours, _ = sf.read(out / "transfer" / record["path"])
        theirs, _ = sf.read(out / original["path"])
        assert abs(np.corrcoef(ours, theirs)[0, 1]) < 0.5
