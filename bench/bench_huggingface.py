"""Embedding a folder with a Hugging Face audio model: ``hf:FOLDER`` against the usual script.

The model (``--model``) has random weights and is saved to a temporary folder with its
feature extractor: ``hubert``, HuBERT base in size (``HubertConfig()``: 12 blocks of 768, 95M
parameters), or ``clap``, LAION-CLAP in size (``ClapConfig()``: HTS-AT and RoBERTa, 48 kHz,
10 s crops). The audio is ``--files`` WAV files of ``--seconds`` s, 44.1 kHz stereo, also
temporary. Two ways, timed in alternating rounds (the machine is shared; the median of
interleaved rounds keeps a slow spell from favouring one):

- musicssl: ``musicssl.load("hf:FOLDER")`` and ``embed_files(model, folder, layers="all")``:
  files decoded and resampled as they stream, windows encoded in batches, every layer's mean
  written to an ``.npz``;
- the usual script: per file, ``soundfile.read``, a mean over channels, ``soxr.resample`` to
  the model's rate, its feature extractor, then the model: HuBERT on the whole file with
  ``output_hidden_states=True`` and each hidden state's mean over time; CLAP's
  ``get_audio_features`` (the clip's embedding in the joint space).

Writes the table to ``--out`` (default bench/results/huggingface_cpu.md, or
huggingface_clap_cpu.md for ``--model clap``):

    .venv/bin/python bench/bench_huggingface.py
    .venv/bin/python bench/bench_huggingface.py --model clap
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch

import musicssl
from bench_embed_layers import cpu_model  # run as a script: bench/ is on sys.path
from musicssl.embed_folder import embed_files
from musicssl.files import write_text
from musicssl.huggingface import _weights_hash
from musicssl.runtime import configure_cpu_runtime

COMMAND = ".venv/bin/python bench/bench_huggingface.py"
DESCRIPTIONS = {"hubert": "HuBERT base in size", "clap": "LAION-CLAP in size"}
WAYS = {
    "hubert": "Both give every layer's mean over time per file; musicssl cuts 5 s windows and "
    "encodes them in batches, the usual script encodes each file whole.",
    "clap": "musicssl gives every layer's mean per file (one 10 s crop each), the usual script "
    "the clip's embedding in the joint space (get_audio_features).",
}


def make_model(folder: Path, kind: str) -> None:
    import transformers

    torch.manual_seed(0)
    if kind == "clap":
        transformers.ClapModel(transformers.ClapConfig()).save_pretrained(folder)
        transformers.ClapFeatureExtractor(truncation="rand_trunc").save_pretrained(folder)
        return
    transformers.HubertModel(transformers.HubertConfig()).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=True, return_attention_mask=False
    ).save_pretrained(folder)


def make_audio(folder: Path, *, files: int, seconds: float) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir()
    paths = []
    for i in range(files):
        t = np.arange(round(seconds * 44100)) / 44100
        tone = 0.3 * np.sin(2 * np.pi * 220 * (1 + i / files) * t)
        stereo = np.stack([tone, tone + 0.05 * rng.standard_normal(t.size)], axis=1)
        paths.append(folder / f"clip{i:02d}.wav")
        soundfile.write(paths[-1], stereo.astype(np.float32), 44100, subtype="PCM_16")
    return paths


def usual_script(folder: Path, paths: list[Path]) -> list[np.ndarray]:
    """What a user writes with transformers alone: one file, one forward pass."""
    import transformers

    extractor = transformers.AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
    rate = extractor.sampling_rate
    vectors = []
    with torch.no_grad():
        for path in paths:
            audio, file_rate = soundfile.read(path, dtype="float32")
            mono = soxr.resample(audio.mean(axis=1), file_rate, rate)
            inputs = extractor(mono, sampling_rate=rate, return_tensors="pt")
            if isinstance(model, transformers.ClapModel):
                found = model.get_audio_features(**inputs)
                vectors.append(getattr(found, "pooler_output", found)[0].numpy())
                continue
            hidden = model(**inputs, output_hidden_states=True).hidden_states
            vectors.append(np.stack([state[0].mean(0).numpy() for state in hidden]))
    return vectors


def ours(folder: Path, audio: Path, out: Path) -> dict:
    model = musicssl.load(f"hf:{folder}")
    return embed_files(model, audio, out=out, layers="all", progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("hubert", "clap"), default="hubert")
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = args.out or f"bench/results/huggingface{'_clap' if args.model == 'clap' else ''}_cpu.md"
    configure_cpu_runtime()
    with tempfile.TemporaryDirectory() as scratch:
        folder, audio = Path(scratch) / args.model, Path(scratch) / "audio"
        make_model(folder, args.model)
        paths = make_audio(audio, files=args.files, seconds=args.seconds)
        times: dict[str, list[float]] = {"musicssl": [], "usual": []}
        ours(folder, audio, Path(scratch) / "warm.npz")  # warm-up: weights read, threads up
        usual_script(folder, paths[:1])
        for round_ in range(args.rounds):
            start = time.perf_counter()
            ours(folder, audio, Path(scratch) / f"e{round_}.npz")
            times["musicssl"].append(time.perf_counter() - start)
            start = time.perf_counter()
            usual_script(folder, paths)
            times["usual"].append(time.perf_counter() - start)
            print(f"round {round_ + 1}: musicssl {times['musicssl'][-1]:.1f} s, "
                  f"usual {times['usual'][-1]:.1f} s", flush=True)  # fmt: skip
        start = time.perf_counter()
        _weights_hash(folder)
        hashing = time.perf_counter() - start
    audio_seconds = args.files * args.seconds
    ours_s, usual_s = statistics.median(times["musicssl"]), statistics.median(times["usual"])
    load = os.getloadavg()[0]
    table = [
        "# Embedding a folder with a Hugging Face audio model (CPU)",
        "",
        "Command (from the repository root):",
        "",
        f"    {COMMAND} --model {args.model} --files {args.files} --seconds {args.seconds:g} "
        f"--rounds {args.rounds}",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs visible (shared; load average "
        f"{load:.2f} after the run), torch {torch.__version__}, {torch.get_num_threads()} "
        "thread(s).",
        "",
        f"{DESCRIPTIONS[args.model]} (random weights), {args.files} WAV files of "
        f"{args.seconds:g} s (44.1 kHz stereo). Seconds are medians of {args.rounds} "
        "alternating rounds after a warm-up; each includes loading the model. "
        f"{WAYS[args.model]}",
        "",
        "| way | s | audio s per s | speed, relative to the usual script |",
        "|---|---:|---:|---:|",
        f"| `musicssl embed hf:FOLDER ... --layers all` | {ours_s:.1f} | "
        f"{audio_seconds / ours_s:.1f} | {usual_s / ours_s:.2f}x |",
        f"| transformers, file by file | {usual_s:.1f} | {audio_seconds / usual_s:.1f} | 1x |",
        "",
        f"Of musicssl's time, {hashing:.1f} s is the sha256 of the model's files, which names "
        "its embeddings (the evaluation cache's key, the .npz's `encoder`); the usual script "
        "has no such name.",
        "",
        "Reading: on a CPU the model's own arithmetic sets the pace; decoding, resampling, "
        "windowing and writing the .npz add little beside it. What `hf:` adds is the protocol "
        "(every layer, frame tracks, the same probes and baselines as a run), not speed.",
        "",
    ]
    write_text(Path(out), "\n".join(table))
    print("\n".join(table))


if __name__ == "__main__":
    main()
