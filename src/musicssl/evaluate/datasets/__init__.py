"""Tasks from a table of labelled audio, and from the local copies of common MIR data sets.

``table_task`` turns a user's CSV or JSONL (path + label(s), optional split) into a ``Task``.
The loaders (``gtzan``, ``magnatagatune``, ``nsynth``, ``giantsteps_key``, ``mtg_jamendo``) read a
data set's layout as it is distributed and build the task the literature evaluates on it. None
of them decodes audio: they check that every file they name exists, and leave unreadable files
to the evaluation, which skips them. Example names are POSIX paths relative to ``Task.root``.

Splits that are not given by the data set are deterministic: items (or groups of items) are
ordered by a SHA-1 hash of their name and cut at fixed proportions, so the same files always
give the same split, whatever the row order or the machine.

Missing audio is an error for loaders driven by annotations (a silently smaller test set would
make scores incomparable), with one exception: a clip named by GTZAN's fault-filtered lists but
absent from the folder is left out and said (``Task.left_out``: the terminal and the
report), because deleting the unreadable ``jazz.00054.wav`` is common practice; more than 1%
of the lists absent is an error (an archive not wholly unpacked).
"""

from __future__ import annotations

from collections.abc import Callable

from musicssl.evaluate.datasets._common import canonical_key
from musicssl.evaluate.datasets.giantsteps import giantsteps_key
from musicssl.evaluate.datasets.gtzan import gtzan
from musicssl.evaluate.datasets.magnatagatune import magnatagatune
from musicssl.evaluate.datasets.mtg_jamendo import mtg_jamendo
from musicssl.evaluate.datasets.nsynth import nsynth
from musicssl.evaluate.datasets.table import table_task
from musicssl.evaluate.task import Task

__all__ = [
    "DATASETS",
    "canonical_key",
    "giantsteps_key",
    "gtzan",
    "magnatagatune",
    "mtg_jamendo",
    "nsynth",
    "table_task",
]

DATASETS: dict[str, Callable[..., Task | list[Task]]] = {
    "gtzan": gtzan,
    "magnatagatune": magnatagatune,
    "nsynth": nsynth,
    "giantsteps_key": giantsteps_key,
    "mtg_jamendo": mtg_jamendo,
}
