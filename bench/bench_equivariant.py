"""Pitch, key and tempo of the equivariant runs beside classic estimators, on the built-in corpus.

    python bench/bench_equivariant.py pitch RUN --store STORE --corpus data/corpus
    python bench/bench_equivariant.py key RUN --store STORE
    python bench/bench_equivariant.py tempo RUN --store STORE

Pitch: monophonic test clips (frame labels: the corpus's f0 tracks, 10 ms hop) and isolated
SoundFont notes rendered here; raw pitch and raw chroma accuracy (50 cents, mir_eval.melody)
of ours, librosa.pyin and, when installed under .cache/bench-peers-pitch (pip install
--target .cache/bench-peers-pitch --no-deps pesto-pitch torchcrepe), pesto-pitch and
torchcrepe (tiny), whose weights ship in their wheels. Their unused imports of torchaudio
and resampy (audio is given to them at 16 kHz, no resampling) are stubbed. Key: test split,
accuracy and MIREX weighted score (mir_eval.key) beside Krumhansl-Schmuckler on a CQT
chroma. Tempo: test split, Acc1 and Acc2 (4%) beside librosa's tempo and beat tracker. CPU
seconds per minute of audio are process CPU time (all threads) of inference alone;
loading and calibration are timed apart. Tempo also gives the read-out's confidence on the
test clips and on audio without a beat (noise, steady sines and chords). Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from musicssl.store import SampleStore

SR = 16000
# pip install --target .cache/bench-peers-pitch --no-deps pesto-pitch torchcrepe omegaconf \
#     antlr4-python3-runtime==4.9.3   (omegaconf: pesto's checkpoint holds its config)
PEERS = Path(__file__).resolve().parents[1] / ".cache" / "bench-peers-pitch"


def timed(fn: Callable[[np.ndarray], object], clips: list[np.ndarray]) -> tuple[list, float]:
    """Outputs of ``fn`` on every clip and CPU seconds per minute of audio."""
    start = time.process_time()
    outputs = [fn(clip) for clip in clips]
    cpu = time.process_time() - start
    minutes = sum(len(c) for c in clips) / SR / 60
    return outputs, cpu / minutes


def test_clips(store: SampleStore, keep: Callable[[dict], bool], limit: int) -> list[int]:
    rows = [i for i, row in enumerate(store.rows) if row["split"] == "test" and keep(row)]
    return rows[:limit]


# --- pitch ---------------------------------------------------------------------------------


def isolated_notes() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One-second SoundFont notes (8 GM programs x 6 pitches) and their f0 at a 10 ms hop."""
    from musicssl.builtin.render import NOTE_OFF, NOTE_ON, Event, Synth

    synth = Synth(SR)
    clips, tracks = [], []
    for program in (0, 24, 40, 42, 56, 65, 71, 73):
        for key in (48, 55, 60, 67, 72, 79):
            events = [Event(0, NOTE_ON, 0, key, 0.8), Event(synth.snap(0.8 * SR), NOTE_OFF, 0, key)]
            clips.append(synth.render(events, {0: program}, SR))
            f0 = np.zeros(100, dtype=np.float32)
            f0[5:75] = 440.0 * 2.0 ** ((key - 69) / 12)  # sounding, clear of onset and release
            tracks.append(f0)
    return clips, tracks


def pitch_systems(run: str) -> dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]:
    """name -> fn(clip) -> (times, f0 Hz) for every system that loads here."""
    import librosa

    from musicssl import pitch

    start = time.process_time()
    ours = pitch.load(run)
    print(f"ours: load and calibration {time.process_time() - start:.1f} CPU s", file=sys.stderr)

    def run_ours(clip):
        track = ours.pitch(clip, SR)
        return track.times, track.f0

    def run_pyin(clip):
        f0, _, _ = librosa.pyin(clip, fmin=60.0, fmax=2100.0, sr=SR, frame_length=1024,
                                hop_length=160, fill_na=None)  # fmt: skip
        return librosa.times_like(f0, sr=SR, hop_length=160), np.nan_to_num(f0, nan=0.0)

    systems = {"ours (pesto-cpu)": run_ours, "librosa.pyin": run_pyin}
    if PEERS.is_dir():
        sys.path.insert(0, str(PEERS))
        for name in ("torchaudio", "resampy"):  # imported, unused at 16 kHz
            sys.modules.setdefault(name, types.ModuleType(name))
        try:
            import pesto

            def run_pesto(clip):
                times, f0, _, _ = pesto.predict(torch.from_numpy(clip), SR, step_size=10.0)
                return times.numpy() / 1000.0, f0.numpy()

            systems["pesto-pitch (mir-1k)"] = run_pesto
        except Exception as error:  # a peer that does not import is reported, not fatal
            print(f"pesto-pitch: {error}", file=sys.stderr)
        try:
            import torchcrepe

            def run_crepe(clip):
                f0 = torchcrepe.predict(torch.from_numpy(clip)[None], SR, hop_length=160,
                                        fmin=50.0, fmax=2000.0, model="tiny", batch_size=512,
                                        device="cpu")[0].numpy()  # fmt: skip
                return np.arange(len(f0)) * 0.01, f0

            systems["torchcrepe (tiny)"] = run_crepe
        except Exception as error:
            print(f"torchcrepe: {error}", file=sys.stderr)
    return systems


def after_onset(ref_f0: np.ndarray, *, hop: float = 0.01, within: float = 0.1) -> np.ndarray:
    """True on the frames of ``ref_f0`` less than ``within`` seconds after a note starts
    (a voiced frame whose pitch differs by more than half a semitone from the frame before)."""
    midi = np.where(ref_f0 > 0, 12 * np.log2(np.maximum(ref_f0, 1e-9) / 440.0), np.nan)
    starts = np.flatnonzero((ref_f0 > 0) & ~(np.abs(np.diff(midi, prepend=np.nan)) <= 0.5))
    near = np.zeros(len(ref_f0), dtype=bool)
    for start in starts:
        near[start : start + round(within / hop)] = True
    return near & (ref_f0 > 0)


def pitch_scores(refs: list[np.ndarray], outputs: list) -> dict[str, float]:
    """RPA and RCA over all voiced frames, then over the frames 100 ms or more after an
    onset (``steady_``), and the share of pitch errors in the first 100 ms after onsets."""
    import mir_eval

    parts: list[list[np.ndarray]] = [[], [], [], []]
    near = []
    for ref_f0, (times, f0) in zip(refs, outputs, strict=True):
        ref_times = np.arange(len(ref_f0)) * 0.01
        arrays = mir_eval.melody.to_cent_voicing(ref_times, ref_f0.astype(float), times,
                                                 np.abs(np.asarray(f0, float)))  # fmt: skip
        for part, array in zip(parts, arrays, strict=True):
            part.append(array)
        near.append(after_onset(ref_f0))
    ref_v, ref_c, est_v, est_c = (np.concatenate(p) for p in parts)
    onset = np.concatenate(near)
    steady = ref_v * ~onset
    wrong = (ref_v > 0) & (np.abs(est_c - ref_c) > 50)
    return {
        "raw_pitch_accuracy": float(mir_eval.melody.raw_pitch_accuracy(ref_v, ref_c, est_v, est_c)),
        "raw_chroma_accuracy": float(
            mir_eval.melody.raw_chroma_accuracy(ref_v, ref_c, est_v, est_c)
        ),
        "steady_raw_pitch_accuracy": float(
            mir_eval.melody.raw_pitch_accuracy(steady, ref_c, est_v, est_c)
        ),
        "steady_raw_chroma_accuracy": float(
            mir_eval.melody.raw_chroma_accuracy(steady, ref_c, est_v, est_c)
        ),
        "errors_after_onset": float((wrong & onset).sum() / max(1, wrong.sum())),
    }


def bench_pitch(args: argparse.Namespace) -> dict:
    store = SampleStore(args.store)
    indices = test_clips(store, lambda row: bool(row.get("monophonic")), args.clips)
    melodies = [store.clip(i).astype(np.float32) for i in indices]
    refs = [np.load(Path(args.corpus) / store.rows[i]["f0"]) for i in indices]
    notes, note_refs = isolated_notes()
    results = {}
    for name, fn in pitch_systems(args.run).items():
        try:
            out_m, cpu_m = timed(fn, melodies)
            out_n, cpu_n = timed(fn, notes)
        except Exception as error:  # a peer that fails offline is reported, not fatal
            print(f"{name}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            continue
        results[name] = {
            "melodies": pitch_scores(refs, out_m),
            "notes": pitch_scores(note_refs, out_n),
            "cpu_s_per_audio_min": (cpu_m + cpu_n) / 2,
        }
        print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    minutes = sum(map(len, melodies)) / SR / 60
    return {"melody_clips": len(melodies), "melody_minutes": minutes, "notes": len(notes),
            "systems": results}  # fmt: skip


# --- key -----------------------------------------------------------------------------------


def krumhansl_schmuckler(clip: np.ndarray, profiles: str) -> str:
    """The key whose profile correlates best with the clip's mean CQT chroma (librosa's,
    each frame scaled to a peak of 1): the profile match ours uses, on librosa's chroma
    instead of the network's."""
    import librosa

    from musicssl.readouts import key_name, profile_key

    chroma = librosa.feature.chroma_cqt(y=clip, sr=SR, hop_length=512).mean(axis=1)
    return key_name(*profile_key(chroma, profiles))


def transfer_key_clips(corpus: Path) -> tuple[list[np.ndarray], list[str]]:
    """The corpus's transfer renders of the test clips (other instruments), with their keys."""
    from musicssl.audio import load
    from musicssl.builtin.transfer import FOLDER
    from musicssl.manifest import read_manifest

    folder = corpus / FOLDER
    if not (folder / "manifest.jsonl").exists():
        return [], []
    rows = [row for row in read_manifest(folder / "manifest.jsonl") if row.get("key")]
    return [load(folder / row["path"], sr=SR) for row in rows], [row["key"] for row in rows]


def bench_key(args: argparse.Namespace) -> dict:
    import mir_eval

    from musicssl.readouts import load_key

    store = SampleStore(args.store)
    indices = test_clips(store, lambda row: bool(row.get("key")), args.clips)
    sets = {"test": ([store.clip(i).astype(np.float32) for i in indices],
                     [store.rows[i]["key"] for i in indices])}  # fmt: skip
    transfer = transfer_key_clips(Path(args.corpus))
    if transfer[0]:
        sets["transfer"] = transfer
    start = time.process_time()
    ours = load_key(args.run)
    print(f"ours: load and tone template {time.process_time() - start:.1f} CPU s; cadences "
          f"named right {ours.cadence_accuracy:.2f}", file=sys.stderr)  # fmt: skip
    results: dict[str, dict] = {}
    for split, (clips, refs) in sets.items():
        for name, fn in (
            ("ours (key-cpu)", lambda c: ours.key(c, SR)),
            ("Krumhansl-Schmuckler, Aarden-Essen", lambda c: krumhansl_schmuckler(c, "aarden")),
            ("Krumhansl-Schmuckler, Krumhansl-Kessler",
             lambda c: krumhansl_schmuckler(c, "krumhansl")),
        ):  # fmt: skip
            estimates, cpu = timed(fn, clips)
            # mir_eval's score is 1 for the same key however it is spelled (Db = C# major).
            weighted = [
                mir_eval.key.weighted_score(r, e) for r, e in zip(refs, estimates, strict=True)
            ]
            results[f"{name}, {split}"] = {
                "clips": len(clips),
                "accuracy": float(np.mean(np.array(weighted) == 1.0)),
                "mirex_weighted": float(np.mean(weighted)),
                "cpu_s_per_audio_min": cpu,
            }
            print(name, split, json.dumps(results[f"{name}, {split}"]), file=sys.stderr, flush=True)
    return {"clips": len(indices), "systems": results}


# --- tempo ---------------------------------------------------------------------------------


def tempo_scores(refs: list[float], estimates: list[float]) -> dict[str, float]:
    ref, est = np.asarray(refs, float), np.asarray(estimates, float)
    acc1 = np.abs(est - ref) <= 0.04 * ref
    acc2 = np.zeros_like(acc1)
    for factor in (1.0, 2.0, 3.0, 0.5, 1.0 / 3.0):
        acc2 |= np.abs(est - factor * ref) <= 0.04 * factor * ref
    return {"acc1": float(acc1.mean()), "acc2": float(acc2.mean())}


def bench_tempo(args: argparse.Namespace) -> dict:
    import librosa

    from musicssl.readouts import load_tempo

    store = SampleStore(args.store)
    indices = test_clips(store, lambda row: bool(row.get("tempo")), args.clips)
    clips = [store.clip(i).astype(np.float32) for i in indices]
    refs = [float(store.rows[i]["tempo"]) for i in indices]
    start = time.process_time()
    ours = load_tempo(args.run)
    print(f"ours: load and calibration {time.process_time() - start:.1f} CPU s", file=sys.stderr)

    def librosa_tempo(clip):
        return float(librosa.feature.tempo(y=clip, sr=SR)[0])

    def librosa_beats(clip):
        return float(np.atleast_1d(librosa.beat.beat_track(y=clip, sr=SR)[0])[0])

    results = {}
    for name, fn in (("ours (tempo-cpu)", lambda c: ours.tempo(c, SR)),
                     ("librosa.feature.tempo", librosa_tempo),
                     ("librosa.beat.beat_track", librosa_beats)):  # fmt: skip
        estimates, cpu = timed(fn, clips)
        results[name] = {**tempo_scores(refs, estimates), "cpu_s_per_audio_min": cpu}
        print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    confidence = {"test clips": [ours.read(clip, SR).confidence for clip in clips]}
    for kind, signals in beatless(SR).items():
        confidence[kind] = [ours.read(signal, SR).confidence for signal in signals]
    summary = {
        kind: {"n": len(v), "mean": float(np.mean(v)), "min": float(np.min(v)),
               "max": float(np.max(v)), "below 0.2": float(np.mean(np.less(v, 0.2)))}
        for kind, v in confidence.items()
    }  # fmt: skip
    return {"clips": len(clips), "systems": results, "confidence": summary}


def beatless(sr: int, *, count: int = 20, seconds: float = 10.0) -> dict[str, list[np.ndarray]]:
    """Audio without a beat, ``count`` of each kind: white and pink noise, steady sines and
    steady three-note chords (60 to 1,000 Hz), at a tenth to a third of full scale."""
    rng = np.random.default_rng(0)
    t = np.arange(round(seconds * sr)) / sr
    out: dict[str, list[np.ndarray]] = {"white noise": [], "pink noise": [], "sine": [],
                                        "chord": []}  # fmt: skip
    for _ in range(count):
        white = rng.standard_normal(len(t))
        spectrum = np.fft.rfft(rng.standard_normal(len(t)))
        pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(1, np.arange(len(spectrum)))), len(t))
        root = 60 * 2 ** rng.uniform(0, 3)
        chord = sum(np.sin(2 * np.pi * root * 2 ** (step / 12) * t) for step in (0, 4, 7))
        sine = np.sin(2 * np.pi * 2 * root * t)
        for kind, signal in (("white noise", white), ("pink noise", pink), ("sine", sine),
                             ("chord", chord)):  # fmt: skip
            level = rng.uniform(0.1, 0.33)
            out[kind].append((level * signal / np.abs(signal).max()).astype(np.float32))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task", choices=["pitch", "key", "tempo"])
    parser.add_argument("run", help="run folder of the task's recipe")
    parser.add_argument("--store", required=True, help="packed store of the built-in corpus")
    parser.add_argument("--corpus", default="data/corpus", help="corpus folder (f0 tracks)")
    parser.add_argument("--clips", type=int, default=10_000, help="at most this many test clips")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    bench = {"pitch": bench_pitch, "key": bench_key, "tempo": bench_tempo}[args.task]
    print(json.dumps(bench(args), indent=2))


if __name__ == "__main__":
    main()
