"""Holding back what audio decoders print while a batch of files is decoded."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class DecoderNotes:
    """What decoders printed while ``decoder_notes`` held their output back.

    Attributes:
        console: the terminal's error stream, for progress bars meanwhile.
        lines: the notes (C libraries' stderr lines, then Python warnings), once closed.
    """

    console: TextIO
    lines: list[str] = field(default_factory=list)


@contextmanager
def decoder_notes() -> Iterator[DecoderNotes]:
    """Hold back what decoders print while a batch of files is decoded.

    libsndfile's mpg123 writes notes such as "Illegal Audio-MPEG-Header" straight to file
    descriptor 2, from worker threads, where they break progress bars apart. Inside this
    context file descriptor 2 goes to a temporary file and Python warnings are recorded;
    progress bars write to ``notes.console`` instead. Whatever a failed file's reason is
    reaches the bad-files report anyway; the notes are only counted and shown once at the end.
    Where file descriptor 2 cannot be duplicated, output is left alone.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            notes = DecoderNotes(console=sys.stderr)
            yield notes
        notes.lines = [f"{w.category.__name__}: {w.message}" for w in caught]
        return
    console = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    notes = DecoderNotes(console=console)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                yield notes
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            console.close()
        capture.seek(0)
        text = capture.read().decode("utf-8", errors="replace")
    notes.lines = [line.strip() for line in text.splitlines() if line.strip()]
    notes.lines += [f"{w.category.__name__}: {w.message}" for w in caught]
