"""What an evaluation task is: audio names, splits and targets, independent of any encoder.

A ``Task`` lists ``Example``s whose ``name`` is an audio path relative to ``Task.root`` (the
same names an embeddings ``.npz`` carries). The protocol (``evaluate.protocol``) turns a task
plus one vector per name (and frame tracks for frame-level tasks) into metrics; loaders
(``evaluate.builtin_tasks``, ``evaluate.datasets``) turn a corpus or a data set's local layout
into tasks. Nothing here reads audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicssl.errors import MusicSSLError

KINDS: tuple[str, ...] = (
    "multiclass",  # target: one class name (str)
    "multilabel",  # target: tuple of class names
    "regression",  # target: float
    "key",  # target: a key name as mir_eval spells it, "F# minor"; 24 classes
    "tempo",  # target: beats per minute (float)
    "pitch",  # frame-level; target: f0 in Hz per frame (np.ndarray, 0 = unvoiced), hop f0_hop
    "retrieval",  # target: a group id; queries retrieve gallery items of their group
)
SPLITS: dict[str, tuple[str, ...]] = {
    "retrieval": ("query", "gallery"),
}
PROBE_SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Example:
    """One audio file of a task.

    Attributes:
        name: audio path relative to the task's root, POSIX separators.
        split: "train", "valid" or "test"; for retrieval "query" or "gallery".
        target: see ``KINDS`` for its type per task kind.
    """

    name: str
    split: str
    target: Any


@dataclass(frozen=True)
class Task:
    """A named evaluation task over audio files under ``root``.

    Attributes:
        name: registry-style name, e.g. "style", "gtzan_genre".
        kind: one of ``KINDS``.
        root: folder the example names are relative to.
        examples: every example, all splits.
        classes: the label vocabulary (multiclass, multilabel, key, pitch), sorted.
        description: one line for reports.
        f0_hop: seconds between f0 values (pitch tasks only).
        left_out: what reading the data set left out, and why, in one sentence ("" for
            nothing): the terminal and the report say it, so that a test set is never
            smaller than its protocol's without a word.
    """

    name: str
    kind: str
    root: Path
    examples: tuple[Example, ...]
    classes: tuple[str, ...] = ()
    description: str = ""
    f0_hop: float | None = None
    left_out: str = field(default="", compare=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise MusicSSLError(f"task {self.name}: unknown kind {self.kind!r} (one of {KINDS})")
        expected = SPLITS.get(self.kind, PROBE_SPLITS)
        found = {example.split for example in self.examples}
        if unknown := found - set(expected):
            raise MusicSSLError(
                f"task {self.name}: unknown split(s) {sorted(unknown)}; expected {expected}"
            )
        if missing := set(expected) - found:
            raise MusicSSLError(f"task {self.name}: split(s) {sorted(missing)} have no examples")
        if self.kind == "pitch" and not self.f0_hop:
            raise MusicSSLError(f"task {self.name}: a pitch task needs f0_hop")

    def split(self, name: str) -> list[Example]:
        """The examples of one split, in task order."""
        return [example for example in self.examples if example.split == name]

    @property
    def names(self) -> list[str]:
        """Every distinct audio name the task needs embedded, in first-seen order."""
        return list(dict.fromkeys(example.name for example in self.examples))

    def split_sizes(self) -> dict[str, int]:
        """Examples per split, in the kind's split order."""
        found = [example.split for example in self.examples]
        return {split: found.count(split) for split in SPLITS.get(self.kind, PROBE_SPLITS)}


def check_names(task: Task, available: Sequence[str], *, source: str) -> None:
    """Raise a clear error when embeddings lack names the task needs."""
    missing = sorted(set(task.names) - set(available))
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise MusicSSLError(
            f"{source}: no embedding for {len(missing)} of the {len(task.names)} files of task "
            f"{task.name} (names must be paths relative to {task.root}): {shown}"
        )
