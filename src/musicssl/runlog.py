"""A run's log: loss means over each logged window, to metrics.csv and TensorBoard."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from musicssl.errors import MusicSSLError
from musicssl.files import atomic_path


class TrainingDiverged(MusicSSLError):
    """The loss became NaN or infinite; the last good checkpoint, if any, is kept."""


class RunLog:
    """Loss means over each logged window, to metrics.csv and TensorBoard.

    The step's outputs are kept on the device until a row is written: one host sync per
    logged window, not per step. Beside the losses a row holds ``views_per_second`` and
    ``data_wait``: the share of the window's wall time the loop spent waiting for the loader,
    which a note names when it holds the run back (after the first window, which includes
    the loader's start). metrics.csv is rewritten whole at every row (rows after a
    resumed step are dropped), so a killed run never leaves a torn row.
    """

    # The columns a row holds beside a method's own values.
    COLUMNS = ("step", "lr", "views_per_second", "data_wait")

    def __init__(
        self, run: Path, *, start_step: int, enabled: bool, precision: str = "32-true"
    ) -> None:
        self.enabled, self.path = enabled, run / "metrics.csv"
        self.precision = precision  # what a divergence's advice depends on
        self.pending: list[dict[str, Tensor]] = []
        self.rows: list[dict[str, Any]] = []
        self.window_start, self.window_views = time.perf_counter(), 0
        self.window_wait, self.first_step, self.noted_wait = 0.0, start_step, False
        self.writer = None
        if not enabled:
            return
        if self.path.exists():
            with open(self.path, newline="") as handle:
                self.rows = [
                    row for row in csv.DictReader(handle) if int(row["step"]) <= start_step
                ]
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run / "tensorboard"), purge_step=start_step + 1)

    def add(self, outputs: dict[str, Tensor], *, views: int) -> None:
        self.pending.append(
            {key: torch.as_tensor(value).detach().reshape(()) for key, value in outputs.items()}
        )
        self.window_views += views

    def waited(self, seconds: float) -> None:
        """Count ``seconds`` the loop spent waiting for data in this window."""
        self.window_wait += seconds

    def write(self, step: int, extra: dict[str, float], *, lr: float, run: Path) -> dict[str, Any]:
        """Write the window's row; raises TrainingDiverged when a loss is not finite."""
        means = {
            key: torch.stack([p[key] for p in self.pending]).float().mean().item()
            for key in self.pending[0]
        }
        self.pending.clear()
        if not all(math.isfinite(value) for value in means.values()):
            kept = "no checkpoint was written yet"
            if any((run / "checkpoints").glob("step-*")):
                kept = f"the last good checkpoint is kept in {run / 'checkpoints'}"
            advice = "lower optim.lr, or check the method's options"
            if self.precision != "32-true":
                advice = "lower optim.lr, or try train.precision=32-true"
            raise TrainingDiverged(
                f"the loss is not finite at step {step} ({means}); {kept}. Try again: {advice}."
            )
        seconds = max(time.perf_counter() - self.window_start, 1e-9)
        row = {"step": step, **means, **extra, "lr": lr,
               "views_per_second": self.window_views / seconds,
               "data_wait": min(self.window_wait / seconds, 1.0)}  # fmt: skip
        self._note_wait(row)
        self.window_start, self.window_views, self.window_wait = time.perf_counter(), 0, 0.0
        self.rows.append(row)
        self._flush(row)
        return row

    def _note_wait(self, row: dict[str, Any]) -> None:
        """Say once when the loop waited for data for over a quarter of a window."""
        first = self.rows[-1]["step"] if self.rows else None
        if not self.enabled or self.noted_wait or first is None or row["data_wait"] <= 0.25:
            return
        if int(first) <= self.first_step:  # the window after a (re)start holds the loader's
            return
        self.noted_wait = True
        print(f"note: the training loop waited for data {row['data_wait']:.0%} of the time "
              f"over steps {int(first) + 1}-{row['step']} (data_wait in metrics.csv); more "
              "loader processes (data.workers) or a store on a faster disk would feed it "
              "faster", flush=True)  # fmt: skip

    def _flush(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        columns = list(dict.fromkeys(key for r in self.rows for key in r))
        with atomic_path(self.path) as temporary, open(temporary, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        if self.writer is not None:
            for key, value in row.items():
                if key != "step":
                    self.writer.add_scalar(key, value, row["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def check_outputs(outputs: Any, name: str) -> None:
    """Refuse what a method's ``forward`` returned where the loop can neither train on it nor
    log it (a method of one's own, say), in one line naming the method.

    Raises:
        MusicSSLError: not a dict with a ``loss`` of one value that gradients reach, a value
            beside it that is not one number, or a name ``metrics.csv`` keeps for its own.
    """
    where = f"method {name!r}: forward"
    if not isinstance(outputs, dict) or "loss" not in outputs:
        got = (
            f"a dict of {sorted(outputs)}" if isinstance(outputs, dict) else type(outputs).__name__
        )
        raise MusicSSLError(f"{where} must return a dict with the 'loss' to train on (got {got})")
    loss = outputs["loss"]
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        got = f"shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else type(loss).__name__
        raise MusicSSLError(f"{where}'s 'loss' must be a tensor of one value (got {got})")
    if not loss.requires_grad:
        raise MusicSSLError(f"{where}'s 'loss' is reached by no gradient (detached, or made "
                            "under torch.no_grad): there is nothing to train")  # fmt: skip
    for key, value in outputs.items():
        if key in RunLog.COLUMNS or key.startswith("probe_"):
            raise MusicSSLError(f"{where} returns {key!r}, a column metrics.csv keeps for its "
                                "own; give it another name")  # fmt: skip
        if not isinstance(value, (int, float)) and not (
            isinstance(value, Tensor) and value.numel() == 1
        ):
            raise MusicSSLError(f"{where} returns {key!r} as {type(value).__name__}: a value "
                                "logged beside the loss is one number")  # fmt: skip
