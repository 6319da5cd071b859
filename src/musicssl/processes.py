"""Which process of a run this is, and how many processes a launcher started for it.

A run spans several processes when Fabric starts them itself (``train.devices=N``: its
children get ``LOCAL_RANK``), or when a launcher does: ``torchrun`` (``TORCHELASTIC_RUN_ID``,
``RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``) or SLURM's ``srun`` (``SLURM_NTASKS``,
``SLURM_PROCID``, ``SLURM_NNODES``: more than one task, not in a job named ``bash`` or
``interactive``, as Lightning reads it). The first process alone checks and locks the run
folder and speaks; every process does the work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from musicssl.errors import MusicSSLError


@dataclass(frozen=True)
class Launch:
    """The processes a launcher started: ``processes`` in all, ``per_node`` on each node."""

    launcher: str
    processes: int
    per_node: int

    @property
    def nodes(self) -> int:
        return max(1, self.processes // self.per_node)


def launched() -> Launch | None:
    """The processes ``torchrun`` or ``srun`` started for this run; None when none did."""
    if os.environ.get("TORCHELASTIC_RUN_ID") is not None:
        world = _count("WORLD_SIZE")
        return Launch("torchrun", world, _count("LOCAL_WORLD_SIZE", world))
    interactive = os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive")
    if _count("SLURM_NTASKS") > 1 and not interactive:  # one task: Fabric starts the rest
        tasks, nodes = _count("SLURM_NTASKS"), _count("SLURM_NNODES")
        return Launch("srun", tasks, max(1, tasks // nodes))
    return None


def is_first_process() -> bool:
    """Whether this is a run's first process (global rank 0), or the only one."""
    ranks = ["RANK", "LOCAL_RANK"]
    if (launch := launched()) is not None and launch.launcher == "srun":
        ranks.append("SLURM_PROCID")
    return all(os.environ.get(name, "0") == "0" for name in ranks)


def fit_launch(devices: str, launch: Launch) -> tuple[int, int]:
    """``(devices, num_nodes)`` for Fabric under ``launch``: ``train.devices`` left as it is
    (1) or ``auto`` takes the launcher's count (one process would train a copy of the run of
    its own into the same folder); another count must equal it.

    Raises:
        MusicSSLError: ``devices`` is not the number of processes started on each node.
    """
    if devices in ("auto", "1") or (devices.isdigit() and int(devices) == launch.per_node):
        return launch.per_node, launch.nodes
    started = f"{launch.per_node} process{'es' if launch.per_node != 1 else ''} on each node"
    raise MusicSSLError(
        f"train.devices={devices}: {launch.launcher} started {started} ({launch.processes} in "
        f"all); leave train.devices out, or start {devices} a node (a run resumes on as many "
        "as it began with)"
    )


def _count(name: str, default: int = 1) -> int:
    text = os.environ.get(name, "")
    digits = text.split("(")[0]  # SLURM writes "2(x3)" for 2 on each of 3 nodes
    return int(digits) if digits.isdigit() and int(digits) > 0 else default
