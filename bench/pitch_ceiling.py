"""The best pitch score a frame rate allows on the built-in pitch task.

The pitch task scores every voiced f0 value of the reference (one every 10 ms) with the frame
nearest it, so an encoder whose frames last ``d`` seconds answers every value its frame spans
with one pitch class. The best any frame feature can do is then the pitch class most of
those values share: this script counts, for frames of each length tiling the clip from its
start, the share of the test split's voiced values that equal their frame's most common pitch
class. A score near this ceiling has nothing left to gain from training at that frame rate.

    python bench/pitch_ceiling.py --corpus data/corpus [--frames 0.01 0.04 0.08 0.16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from musicssl.evaluate.builtin_tasks import pitch_task
from musicssl.evaluate.pitch_frames import nearest_frames


def pitch_classes(f0: np.ndarray) -> np.ndarray:
    """The pitch class (0 = A) of each f0 value in Hz, to the nearest semitone."""
    return np.round(12 * np.log2(f0 / 440.0)).astype(np.int64) % 12


def ceiling(corpus: Path, frame_seconds: float) -> float:
    """The share of the test split's voiced f0 values equal to their frame's commonest class."""
    task = pitch_task(corpus)
    hop = float(task.f0_hop or 0.0)
    agreeing = total = 0
    for example in task.split("test"):
        f0 = np.asarray(example.target, dtype=np.float64).reshape(-1)
        voiced = np.flatnonzero(f0 > 0)
        count = max(1, int(len(f0) * hop / frame_seconds))
        centres = (np.arange(count) + 0.5) * frame_seconds
        frame, covered = nearest_frames(centres, voiced * hop)
        frame, classes = frame[covered], pitch_classes(f0[voiced[covered]])
        for index in np.unique(frame):
            agreeing += int(np.bincount(classes[frame == index]).max())
        total += len(classes)
    return agreeing / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--frames", type=float, nargs="+", default=[0.01, 0.02, 0.04, 0.08, 0.16],
                        help="frame lengths in seconds")  # fmt: skip
    args = parser.parse_args()
    print("| frame | ceiling |\n|---:|---:|")
    for seconds in args.frames:
        print(f"| {1000 * seconds:g} ms | {ceiling(args.corpus, seconds):.3f} |")


if __name__ == "__main__":
    main()
