"""A wall-clock budget for a run: where it ends, fitted from its measured speed.

A run under ``train.minutes`` times its first steps and moves its last step (and with it the
learning-rate schedule) to what the budget allows. The last step is fitted after each of
``FIT_STEPS`` steps: first roughly (start-up included), then from the speed of the steps since
the last fit, holding back less of the time left each time (``FIT_MARGINS``). The last fit
comes late because the first hundred steps of a CPU run ran up to a quarter slower than the
rest, and a fit on them alone ended runs a minute or more early. Once settled, the last step
is kept in every checkpoint, so a resumed run ends where the uninterrupted one would.
"""

from __future__ import annotations

import time

FIT_STEPS = (20, 80, 320)
FIT_MARGINS = (0.1, 0.03, 0.02)


class TimeBudget:
    """Where a run of at most ``max_steps`` ends within ``minutes``; the clock starts now.

    Args:
        minutes: the wall-clock budget of this process, from now.
        max_steps: the run never goes past this step.
        start_step: the step this process starts from (a resumed run counts from there).
    """

    def __init__(self, minutes: float, *, max_steps: int, start_step: int) -> None:
        self.seconds, self.max_steps, self.start_step = 60 * minutes, max_steps, start_step
        self.began = time.perf_counter()
        self.fitted_at = 0.0  # seconds after the start, at the last fit
        self.settled = False

    def update(self, step: int, now: float | None = None) -> int | None:
        """The new last step when a fit is due after ``step``, else None.

        ``now`` is ``time.perf_counter()`` (given by tests). After the last fit, or when the run
        ends before the next one, ``settled`` turns true and no fit comes again.
        """
        done = step - self.start_step
        if self.settled or done not in FIT_STEPS:
            return None
        which = FIT_STEPS.index(done)
        elapsed = (time.perf_counter() if now is None else now) - self.began
        since = FIT_STEPS[which - 1] if which else 0
        per_step = (elapsed - self.fitted_at) / (done - since)
        self.fitted_at = elapsed
        last = last_step_within(
            self.seconds - elapsed,
            step=step,
            max_steps=self.max_steps,
            seconds_per_step=per_step,
            margin=FIT_MARGINS[which],
        )
        final = which == len(FIT_STEPS) - 1
        self.settled = final or last <= self.start_step + FIT_STEPS[which + 1]
        return last


def last_step_within(
    remaining: float, *, step: int, max_steps: int, seconds_per_step: float, margin: float
) -> int:
    """The last step that fits ``remaining`` seconds at ``seconds_per_step``.

    ``margin``, a share of the remaining time, is held back for checkpoints, probes and the
    error of the estimate. A step count a hair below a whole number (clock arithmetic) counts
    as that number.
    """
    fits = step + int((1 - margin) * remaining / max(seconds_per_step, 1e-9) + 1e-6)
    return max(step, min(max_steps, fits))
