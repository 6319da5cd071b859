"""Progress bars that stay readable in a log file.

On a terminal (or in a notebook) ``bar`` is a ``tqdm`` bar. Anywhere else (stderr redirected
to a file, a batch job, CI) a bar redraws itself with carriage returns that a log file keeps
as one endless line, so ``bar`` returns :class:`LineProgress` instead: a whole line now and
then, when another ``every_percent`` of the work is done or ``every_seconds`` have passed, and
one at the end::

    pretrain: 40% 400/1000 step, 1m12s, 5.6 step/s, loss=3.8120

Both take the calls the verbs make: iterate, ``update``, ``set_postfix``, ``close``, set
``total``, and ``with``.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

Item = TypeVar("Item")

EVERY_PERCENT = 10.0
EVERY_SECONDS = 30.0
# A line per tenth only once this long has passed since the last line: a job of a second or
# two writes its last line alone, not ten.
MIN_SECONDS = 2.0


def is_interactive(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (stderr by default) redraws a bar in place: a terminal or a notebook."""
    stream = sys.stderr if stream is None else stream
    # Jupyter's output streams are not terminals, yet they show tqdm's widgets.
    if type(stream).__module__.startswith("ipykernel"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def bar(
    iterable: Iterable[Item] | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    initial: float = 0,
    disable: bool = False,
    leave: bool = True,
    file: TextIO | None = None,
) -> Any:
    """A progress bar: ``tqdm`` on a terminal, :class:`LineProgress` elsewhere.

    Args:
        iterable: items to pass through, counting each; None to count with ``update``.
        total: the count at 100%; by default ``len(iterable)`` where it has one.
        desc: what is being done ("index", "pretrain").
        unit: what is counted ("file", "step").
        initial: the count already done (a resumed run).
        disable: show nothing (``progress=False``).
        leave: keep the finished bar on screen (terminal only: log lines always stay).
        file: where to write; stderr by default.
    """
    if is_interactive(file):
        # A notebook's widget bar needs ipywidgets; without it tqdm.auto warns on every bar.
        if _has_widgets():
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm

        return tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            initial=initial,
            disable=disable,
            leave=leave,
            file=file,
        )
    return LineProgress(
        iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, file=file
    )


@functools.cache
def _has_widgets() -> bool:
    """Whether ipywidgets is installed (looked up once: bars are made often)."""
    return importlib.util.find_spec("ipywidgets") is not None


class LineProgress:
    """Progress as whole lines: every ``every_percent`` of ``total`` (at most one line per
    ``MIN_SECONDS``), or every ``every_seconds``, and one at the end."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        initial: float = 0,
        disable: bool = False,
        file: TextIO | None = None,
        every_percent: float = EVERY_PERCENT,
        every_seconds: float = EVERY_SECONDS,
        clock: Any = time.monotonic,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.n = iterable, total, initial
        self.desc, self.unit, self.disable = desc, unit, disable
        self.file = file
        self.every_percent, self.every_seconds = every_percent, every_seconds
        self._clock = clock
        self._start = self._last_time = clock()
        self._initial = initial
        self._last_n = initial
        self._postfix = ""
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress counts with update(); it was given nothing to iterate")
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def update(self, n: float = 1) -> None:
        """Count ``n`` more; write a line if a step of percent or of seconds has passed."""
        self.n += n
        if self.disable:
            return
        now = self._clock()
        if now - self._last_time >= self.every_seconds:
            self._write(now)
        elif self.total and self.total > 0:
            step = self.total * self.every_percent / 100
            crossed = int(self.n / step) > int(self._last_n / step)  # a step since the last line
            if crossed and now - self._last_time >= MIN_SECONDS:
                self._write(now)

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        """Figures shown after the count in the next line (``loss=...``); ``refresh`` is
        tqdm's, and a line is written only by ``update``."""
        self._postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def close(self) -> None:
        """Write the last line (unless the last one written already showed this count)."""
        if self._closed:
            return
        self._closed = True
        if not self.disable and self.n != self._last_n:
            self._write(self._clock())

    def refresh(self) -> None:
        if not self.disable:
            self._write(self._clock())

    def _write(self, now: float) -> None:
        elapsed = now - self._start
        count = f"{_number(self.n)}/{_number(self.total)}" if self.total else _number(self.n)
        parts = [f"{count} {self.unit}", _duration(elapsed)]
        if elapsed > 0 and self.n > self._initial:
            parts.append(f"{(self.n - self._initial) / elapsed:.3g} {self.unit}/s")
        if self._postfix:
            parts.append(self._postfix)
        percent = f"{100 * self.n / self.total:.0f}% " if self.total else ""
        prefix = f"{self.desc}: " if self.desc else ""
        stream = self.file if self.file is not None else sys.stderr
        print(f"{prefix}{percent}{', '.join(parts)}", file=stream, flush=True)
        self._last_time, self._last_n = now, self.n


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
