"""CPU time per built-in corpus clip: drawing, rendering, labelling, and the render alone.

Renders every clip of a ``tiny`` build (36 clips of 10 s) again in this one process, from the
pieces that build parsed, and reports CPU time (not wall time, so other load on the machine
does not count) per clip for ``make_clip`` and, within it, ``Synth.render``.

    python bench/bench_corpus_render.py [--corpus DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from musicssl.builtin import build_corpus
from musicssl.builtin.build import CLIP_SECONDS, FORMAT_VERSION, SAMPLE_RATE
from musicssl.builtin.clips import make_clip
from musicssl.builtin.pieces import Piece
from musicssl.builtin.render import Synth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="a tiny build to reuse (default: build one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        corpus = args.corpus or Path(scratch) / "tiny"
        build_corpus(corpus, size="tiny", seed=0, workers=1, progress=False)
        records = [json.loads(line) for line in (corpus / "manifest.jsonl").open()]
        cache = corpus / ".cache" / f"pieces-v{FORMAT_VERSION}"
        pieces = {}
        for record in records:
            data = json.loads((cache / f"{record['piece_id']}.json").read_text())
            pieces[record["piece_id"]] = Piece.from_json(data["piece"])
    synth = Synth(SAMPLE_RATE)
    render = synth.render
    render_seconds = 0.0

    def timed_render(*args, **kwargs):
        nonlocal render_seconds
        started = time.process_time()
        audio = render(*args, **kwargs)
        render_seconds += time.process_time() - started
        return audio

    synth.render = timed_render  # type: ignore[method-assign]
    started = time.process_time()
    for record in records:
        index = int(record["clip_id"].rsplit("-", 1)[1])
        piece = pieces[record["piece_id"]]
        make_clip(
            piece, index, clip_id=record["clip_id"], seed=0, synth=synth, clip_seconds=CLIP_SECONDS
        )
    total = time.process_time() - started
    count = len(records)
    print(
        f"{count} clips of {CLIP_SECONDS:.0f} s: make_clip {1000 * total / count:.0f} ms CPU "
        f"per clip, of which Synth.render {1000 * render_seconds / count:.0f} ms"
    )


if __name__ == "__main__":
    main()
