"""Which process of a run this is, and how many a launcher started, from the environment."""

from __future__ import annotations

import pytest

from musicssl.errors import MusicSSLError
from musicssl.processes import Launch, fit_launch, is_first_process, launched

LAUNCHER_VARIABLES = ("TORCHELASTIC_RUN_ID", "RANK", "LOCAL_RANK", "WORLD_SIZE",
                      "LOCAL_WORLD_SIZE", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_NNODES",
                      "SLURM_JOB_NAME")  # fmt: skip


@pytest.fixture
def environ(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_


def test_alone_this_is_the_first_and_only_process(environ):
    assert launched() is None and is_first_process()


def test_fabrics_own_children_are_not_first(environ):
    environ(LOCAL_RANK="1")
    assert launched() is None and not is_first_process()


def test_torchrun_gives_its_counts_and_ranks(environ):
    environ(TORCHELASTIC_RUN_ID="x", RANK="0", LOCAL_RANK="0", WORLD_SIZE="8",
            LOCAL_WORLD_SIZE="4")  # fmt: skip
    assert launched() == Launch("torchrun", 8, 4) and launched().nodes == 2
    assert is_first_process()
    environ(RANK="4")  # the first process of the second node is not the run's first
    assert not is_first_process()


def test_srun_tasks_are_ranked_by_slurm_unless_the_job_is_interactive(environ):
    environ(SLURM_NTASKS="4", SLURM_NNODES="2", SLURM_PROCID="2", SLURM_JOB_NAME="clmr")
    assert launched() == Launch("srun", 4, 2) and not is_first_process()
    environ(SLURM_PROCID="0")
    assert is_first_process()
    environ(SLURM_JOB_NAME="interactive", SLURM_PROCID="3")  # processes of one's own
    assert launched() is None and is_first_process()
    environ(SLURM_JOB_NAME="clmr", SLURM_NTASKS="1")  # one task: Fabric starts the others
    assert launched() is None


def test_train_devices_must_match_what_the_launcher_started():
    launch = Launch("torchrun", 8, 4)
    assert fit_launch("auto", launch) == fit_launch("1", launch) == fit_launch("4", launch)
    assert fit_launch("auto", launch) == (4, 2)
    with pytest.raises(MusicSSLError, match=r"^train.devices=2: torchrun started 4 processes "
                       r"on each node \(8 in all\); leave train.devices out"):  # fmt: skip
        fit_launch("2", launch)
