"""Where a run trains: the accelerator this machine has, and the processes of Lightning
Fabric, which it starts itself or takes from a launcher (``musicssl.processes``)."""

from __future__ import annotations

from typing import Any

from musicssl.errors import MusicSSLError
from musicssl.processes import fit_launch, launched
from musicssl.recipe import TrainSettings
from musicssl.runtime import accelerator_problem, cuda_problem, mps_problem


def check_accelerator(settings: TrainSettings) -> None:
    """Refuse ``train.accelerator`` where this machine lacks it (CUDA, MPS), and FSDP off
    CUDA.

    Raises:
        MusicSSLError: the setting, and why this machine cannot run it.
    """
    on_cpu = ["train.accelerator=cpu"]
    on_cpu += ["train.precision=32-true"] if settings.precision != "32-true" else []
    on_cpu += ["train.compile=false"] if settings.compile else []  # compiling takes minutes
    problem = accelerator_problem(settings.accelerator, settings.devices)
    if problem is not None:
        raise MusicSSLError(
            f"train.accelerator={settings.accelerator}: {problem}; pick a CPU recipe "
            f"(musicssl pretrain --help) or pass {' '.join(on_cpu)}"
        )
    if settings.precision.startswith("16") and _on_cpu(settings.accelerator):
        raise MusicSSLError(
            f"train.precision={settings.precision}: float16 autocast needs a GPU; on a CPU "
            "pass train.precision=bf16-mixed (or 32-true)"
        )
    if (launch := launched()) is not None:
        fit_launch(settings.devices, launch)
    if settings.strategy == "fsdp":
        problem = cuda_problem(1) if settings.accelerator in ("auto", "cuda", "gpu") else None
        if problem is not None or settings.accelerator in ("cpu", "mps"):
            where = problem or f"train.accelerator={settings.accelerator}"
            raise MusicSSLError(
                f"train.strategy=fsdp: FSDP shards the model over CUDA GPUs ({where}); "
                "use train.strategy=ddp, or auto"
            )


def _on_cpu(accelerator: str) -> bool:
    """Whether Fabric's ``accelerator`` runs on this machine's CPU."""
    return accelerator == "cpu" or (
        accelerator == "auto" and cuda_problem(1) is not None and mps_problem() is not None
    )


def start_fabric(settings: Any) -> Any:
    import lightning as L

    check_accelerator(settings)
    devices = int(settings.devices) if settings.devices.isdigit() else settings.devices
    num_nodes = 1
    if (launch := launched()) is not None:  # torchrun or srun: as many as it started
        devices, num_nodes = fit_launch(settings.devices, launch)
    fabric = L.Fabric(
        accelerator=settings.accelerator,
        devices=devices,
        num_nodes=num_nodes,
        precision=settings.precision,
        strategy=settings.strategy,
    )
    fabric.launch()
    return fabric
