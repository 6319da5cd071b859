"""What ``--tasks`` names: built-in tasks, ``DATASET=ROOT`` folders (with the loader's
options, ``DATASET=ROOT,OPTION=VALUE``) and tables of your own.

Each entry is told apart (``needs_corpus``) before any corpus is built for it, so that a
misspelt name costs no rendering; ``resolve_tasks`` then builds the tasks.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from musicssl.errors import MusicSSLError
from musicssl.evaluate.task import Task
from musicssl.splits import GivenSplits

# What ``--tasks`` takes as a table of your own: its file name's ending, any case.
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")


def needs_corpus(specs: Sequence[str] | None) -> bool:
    """Whether the tasks ``specs`` name include a built-in one (none named: all of them).

    Raises:
        MusicSSLError: a spec that names no task (before any corpus is built for it).
    """
    return not specs or any(_spec_kind(spec) == "builtin" for spec in specs)


def dataset_splits(spec: str) -> GivenSplits:
    """Each file's split in the standard data set ``DATASET=ROOT[,OPTION=VALUE ...]``, as its
    loader splits it for evaluation: what ``data index --splits`` gives its files."""
    split_of: dict[str, str] = {}
    for task in dataset_tasks(spec, option="--splits"):
        for example in task.examples:
            split_of[str(task.root / example.name)] = example.split
    return GivenSplits(spec, split_of)


def is_dataset_spec(text: str) -> bool:
    """Whether ``text`` names a standard data set, ``DATASET=ROOT...``."""
    from musicssl.evaluate import datasets

    return text.split("=", 1)[0] in datasets.DATASETS and "=" in text


def _spec_kind(spec: str) -> str:
    """What a ``--tasks`` entry names: "dataset" (``DATASET=ROOT``), "table" or "builtin".

    Raises:
        MusicSSLError: none of these.
    """
    from musicssl.evaluate import builtin_tasks, datasets

    if "=" in spec:
        return "dataset"
    if spec.lower().endswith(TABLE_SUFFIXES):
        return "table"
    if spec.endswith(builtin_tasks.TRANSFER_SUFFIX):
        name = spec.removesuffix(builtin_tasks.TRANSFER_SUFFIX)
        if name not in builtin_tasks.TRANSFER_TASKS:
            raise MusicSSLError(
                f"no transfer task {spec!r}; choose from {', '.join(builtin_tasks.TRANSFER_TASKS)}"
                f" with {builtin_tasks.TRANSFER_SUFFIX}, or transfer"
            )
        return "builtin"
    if spec in builtin_tasks.TASKS or spec == "transfer":
        return "builtin"
    if spec.startswith("zeroshot"):
        raise MusicSSLError(
            f"{spec!r} is not asked for by name: a source with a text tower is scored zero-shot "
            "whenever its tasks embed the corpus's whole test split (a clip task, e.g. style)"
        )
    raise MusicSSLError(
        f"unknown task {spec!r}: give a built-in task "
        f"({', '.join(builtin_tasks.TASKS)}; NAME@transfer or transfer), DATASET=ROOT "
        f"({', '.join(sorted(datasets.DATASETS))}) or a .csv, .tsv or .jsonl table"
    )


def resolve_tasks(
    specs: Sequence[str] | None,
    *,
    corpus: Path,
    cache: Path | None = None,
    progress: bool = True,
) -> list[Task]:
    """Tasks from names: built-in task names, ``DATASET=ROOT``, or a CSV, TSV or JSONL table.

    ``NAME@transfer`` is a built-in task tested on the corpus's transfer renders, and
    ``transfer`` names every such task (see ``builtin_tasks``).

    Args:
        specs: the names; None or empty for every built-in task.
        corpus: the built-in corpus folder.
        cache: where the degraded copies go when the corpus cannot be written to.
        progress: show a progress bar while degraded copies are made.
    """
    from musicssl.evaluate import builtin_tasks, datasets

    if not specs:
        return builtin_tasks.builtin_tasks(corpus, cache=cache, progress=progress)
    tasks: list[Task] = []
    for spec in dict.fromkeys(specs):  # a name given twice is probed once
        kind = _spec_kind(spec)
        if kind == "dataset":
            tasks.extend(dataset_tasks(spec))
        elif kind == "table":
            tasks.append(datasets.table_task(Path(spec)))
        elif spec in builtin_tasks.TASKS:
            tasks.append(builtin_tasks.builtin_task(spec, corpus, cache=cache, progress=progress))
        elif spec == "transfer":
            tasks.extend(
                builtin_tasks.transfer_task(n, corpus) for n in builtin_tasks.TRANSFER_TASKS
            )
        else:
            name = spec.removesuffix(builtin_tasks.TRANSFER_SUFFIX)
            tasks.append(builtin_tasks.transfer_task(name, corpus))
        tasks = _one_task_a_name(tasks, spec)
    return tasks


def dataset_tasks(spec: str, *, option: str = "--tasks") -> list[Task]:
    """The tasks of ``DATASET=ROOT[,OPTION=VALUE ...]``: the loader's keyword arguments after
    the folder (``giantsteps_key=GS,train_root=MTG``); a part without ``=`` belongs to the
    value before it (a comma in a path)."""
    from musicssl.evaluate import datasets

    dataset, rest = spec.split("=", 1)
    if dataset not in datasets.DATASETS:
        raise MusicSSLError(
            f"unknown data set {dataset!r}; known: {', '.join(sorted(datasets.DATASETS))}"
        )
    loader = datasets.DATASETS[dataset]
    known = {
        name: parameter
        for name, parameter in inspect.signature(loader).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    root, *parts = rest.split(",")
    given: dict[str, str] = {}
    for part in parts:
        name, equals, value = part.partition("=")
        if not equals:  # the comma was in the last value
            if given:
                given[next(reversed(given))] += f",{part}"
            else:
                root += f",{part}"
            continue
        if name in given:
            raise MusicSSLError(f"{option} {spec}: {name} is given twice")
        if name not in known:
            offered = ", ".join(known) or "none"
            raise MusicSSLError(
                f"{option} {spec}: {dataset} has no option {name!r} (its options: {offered})"
            )
        given[name] = value
    options = {
        name: _option_value(f"{option} {spec}", name, value, known[name])
        for name, value in given.items()
    }
    if not root:
        raise MusicSSLError(f"{option} {spec}: give the data set's folder after '='")
    folder = Path(root).expanduser()  # a quoted ~ too, as zsh leaves it
    if not folder.is_dir():
        raise MusicSSLError(f"{option} {spec}: {folder} is not a folder")
    loaded = loader(folder, **options)
    return loaded if isinstance(loaded, list) else [loaded]


def _option_value(given: str, name: str, value: str, parameter: inspect.Parameter) -> Any:
    """A loader option's value from its text: a number where the loader takes an int."""
    if "int" not in str(parameter.annotation):
        return value
    try:
        return int(value)
    except ValueError:
        raise MusicSSLError(f"{given}: {name} takes a whole number, not {value!r}") from None


def _one_task_a_name(tasks: list[Task], spec: str) -> list[Task]:
    """``tasks`` with a task named twice kept once (``transfer`` and ``key@transfer``);
    refused when the two are other data: results are kept by task name."""
    kept: dict[str, Task] = {}
    for task in tasks:
        earlier = kept.setdefault(task.name, task)
        if earlier is not task and (earlier.root, earlier.description) != (
            task.root,
            task.description,
        ):
            raise MusicSSLError(
                f"--tasks {spec}: gives a task named {task.name!r}, as an earlier one does; "
                "results are kept by name, so give one copy of a data set at a time, or rename "
                "the table (its file name is its task's name)"
            )
    return list(kept.values())
