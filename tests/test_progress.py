"""Progress: a tqdm bar on a terminal, whole lines elsewhere."""

from __future__ import annotations

import importlib.util
import io

from tqdm import tqdm

from musicssl.progress import LineProgress, _has_widgets, bar


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_a_line_every_tenth_and_no_carriage_return():
    log, clock = io.StringIO(), Clock()
    assert isinstance(bar(total=100, file=log), LineProgress)
    progress = LineProgress(total=100, desc="index", unit="file", file=log, clock=clock)
    for _ in range(100):
        clock.now += 1.0  # a tenth takes 10 s: past the least time between lines
        progress.update()
    progress.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [line.split()[1] for line in lines] == [f"{p}%" for p in range(10, 101, 10)]
    assert lines[-1].startswith("index: 100% 100/100 file, ")


def test_a_quick_job_writes_its_last_line_alone():
    log = io.StringIO()
    progress = bar(total=36, desc="pack", unit="clip", file=log)
    for _ in range(36):
        progress.update()
    progress.close()
    assert [line.split(":")[0] for line in log.getvalue().splitlines()] == ["pack"]
    assert log.getvalue().startswith("pack: 100% 36/36 clip")


def test_a_slow_count_writes_every_few_seconds_with_its_rate_and_postfix():
    log, clock = io.StringIO(), Clock()
    progress = LineProgress(
        total=1000, desc="pretrain", unit="step", initial=200, file=log, clock=clock
    )
    clock.now = 31.0
    progress.set_postfix(loss="1.2500")
    progress.update(31)  # 3.1%: not a tenth, but 31 s since the start
    progress.update(1)  # nothing new to say
    assert log.getvalue().splitlines() == [
        "pretrain: 23% 231/1000 step, 31s, 1 step/s, loss=1.2500"
    ]
    progress.close()
    assert log.getvalue().splitlines()[-1].startswith("pretrain: 23% 232/1000 step")


def test_iterating_counts_each_item_and_an_unknown_total_only_the_count():
    log, clock = io.StringIO(), Clock()
    items = list(LineProgress(iter("abc"), desc="embed", file=log, clock=clock))
    assert items == ["a", "b", "c"]
    assert log.getvalue() == "embed: 3 it, 0s\n"


def test_disabled_writes_nothing_and_a_terminal_gets_tqdm():
    log = io.StringIO()
    with bar(range(3), disable=True, file=log) as progress:
        assert list(progress) == [0, 1, 2]
    assert log.getvalue() == ""
    terminal = Terminal()
    progress = bar(total=2, desc="pack", file=terminal)
    assert isinstance(progress, tqdm)
    progress.update(2)
    progress.close()
    assert "\r" in terminal.getvalue()


def test_a_notebook_without_ipywidgets_gets_a_text_bar_and_no_warning(monkeypatch, recwarn):
    notebook = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})()
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "ipywidgets" else real_find_spec(name, *args),
    )
    _has_widgets.cache_clear()  # looked up once per process: here, after the patch
    progress = bar(total=2, desc="embed", file=notebook, disable=True)
    _has_widgets.cache_clear()
    assert type(progress) is tqdm  # tqdm.auto's would warn "IProgress not found"
    progress.close()
    assert not [w for w in recwarn if "IProgress" in str(w.message)]
