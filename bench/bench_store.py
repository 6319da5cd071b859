"""Random 3 s crops per second: the sample store against decoding crops from source files.

Every reader serves the same random (clip, offset) pairs, in one run:
  store (loader)  ``TwoCrops`` items, the code path of the training DataLoader, per crop:
                  int16 crops; the trainer converts a whole batch with ``pcm_to_float`` on
                  its device, timed separately here (per crop, on this CPU)
  store (crop)    ``SampleStore.crop``: one float32 crop, as a user would read it
  raw memmap      an int16 ``np.memmap`` slice converted to float32 (the floor)
  wav/flac/ogg    soundfile seek + read of the crop from the source file (the usual way)

    python bench/bench_store.py [--clips 40] [--seconds 30] [--crops 3000] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from musicssl.corpus import index_folder
from musicssl.pack import pack
from musicssl.sampling import TwoCrops, pcm_to_float
from musicssl.store import SampleStore

SR = 16000


def make_sources(root: Path, *, clips: int, seconds: float) -> None:
    rng = np.random.default_rng(0)
    time_axis = np.arange(int(seconds * SR)) / SR
    for number in range(clips):
        # Tones plus noise: compressible like music, so FLAC/OGG do real work.
        freqs = rng.uniform(100, 2000, size=4)
        signal = sum(np.sin(2 * np.pi * f * time_axis) for f in freqs) / 8
        signal = (signal + rng.normal(0, 0.02, signal.shape)).astype(np.float32)
        for extension in ("wav", "flac", "ogg"):
            folder = root / extension
            folder.mkdir(exist_ok=True)
            subtype = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS"}[extension]
            sf.write(str(folder / f"{number}.{extension}"), signal, SR, subtype=subtype)


def rates_interleaved(readers: dict, pairs_of: dict, *, rounds: int = 5) -> dict[str, float]:
    """Crops per second of each reader: best of ``rounds``, the readers taking turns in every
    round so that a change in machine load hits them all alike."""
    for name, function in readers.items():
        for clip, start in pairs_of[name][:50]:
            function(clip, start)  # warm up caches and lazy maps
    best = dict.fromkeys(readers, float("inf"))
    for _ in range(rounds):
        for name, function in readers.items():
            pairs = pairs_of[name]
            began = time.perf_counter()
            for clip, start in pairs:
                function(clip, start)
            best[name] = min(best[name], (time.perf_counter() - began) / len(pairs))
    return {name: 1.0 / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--crops", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "store.md")
    args = parser.parse_args()
    crop_samples = 3 * SR

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        make_sources(root, clips=args.clips, seconds=args.seconds)
        index_folder(root / "wav", out=root / "m.jsonl", progress=False)
        pack(root / "m.jsonl", out=root / "store", sr=SR, progress=False)
        store = SampleStore(root / "store")
        names = [Path(row["path"]).stem for row in store.rows]

        raw_path = root / "raw.int16"
        store.samples.tofile(raw_path)
        raw = np.memmap(raw_path, dtype="<i2", mode="r")
        offsets = np.load(root / "store" / "offsets.npy").tolist()

        rng = np.random.default_rng(1)
        pairs = [
            (int(c), int(rng.integers(0, store.num_samples(int(c)) - crop_samples)))
            for c in rng.integers(0, len(store), size=args.crops)
        ]
        loader = TwoCrops(store, num_samples=crop_samples, seed=0)

        def from_file(extension: str):
            def read(clip: int, start: int) -> np.ndarray:
                path = root / extension / f"{names[clip]}.{extension}"
                with sf.SoundFile(str(path)) as handle:
                    handle.seek(start)
                    return handle.read(crop_samples, dtype="float32")

            return read

        batch = torch.stack([loader[c]["x_a"] for c, _ in pairs[:96]])
        readers = {
            # The loader draws its own offsets; each item is two crops.
            "loader item": lambda clip, start: loader[clip],
            "batched float conversion": lambda clip, start: pcm_to_float(batch),
            "store (crop)": lambda c, s: store.crop(c, s, crop_samples),
            "raw int16 memmap -> float32": lambda c, s: raw[
                offsets[c] + s : offsets[c] + s + crop_samples
            ].astype(np.float32),
            "soundfile seek+read WAV": from_file("wav"),
            "soundfile seek+read FLAC": from_file("flac"),
            "soundfile seek+read OGG": from_file("ogg"),
        }
        pairs_of = {name: pairs for name in readers}
        pairs_of["batched float conversion"] = pairs[:200]
        pairs_of["soundfile seek+read FLAC"] = pairs[:1000]
        pairs_of["soundfile seek+read OGG"] = pairs[:500]
        measured = rates_interleaved(readers, pairs_of)

    item_rate = 2 * measured.pop("loader item")
    convert_rate = 96 * measured.pop("batched float conversion")
    rates = {
        "store, training loader path (int16 crop)": item_rate,
        **measured,
        "pcm_to_float on a batch of 96, per crop (on the training device)": convert_rate,
    }
    store_rate = rates["store, training loader path (int16 crop)"]
    lines = [
        "# Random 3 s crops per second (16 kHz mono)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {platform.python_version()}; "
        f"{args.clips} clips x {args.seconds:g} s, {args.crops} random crops, best of 5 "
        "interleaved rounds, files in the page cache.",
        f"Command: `python bench/bench_store.py --clips {args.clips} --seconds {args.seconds:g} "
        f"--crops {args.crops}`",
        f"Load average at the end: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores).",
        "",
        "The training loader ships int16 crops; `pcm_to_float` converts whole batches on the "
        "training device (one multiply; on a GPU it is negligible), listed last for the CPU.",
        "",
        "| reader | crops/s | µs/crop | store (loader) speed-up |",
        "|---|---:|---:|---:|",
    ]
    for name, value in rates.items():
        lines.append(f"| {name} | {value:,.0f} | {1e6 / value:.1f} | {store_rate / value:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
