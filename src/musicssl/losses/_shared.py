"""What every batch-level loss shares: float32 maths, the cross-process gather, shape checks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch
import torch.distributed as dist
from torch import Tensor

from musicssl.errors import MusicSSLError

_Loss = TypeVar("_Loss", bound=Callable[..., Any])


def _in_float32(loss: _Loss) -> _Loss:
    """Run ``loss`` with autocast off and half-precision tensor arguments cast to float32.

    Under bf16, logits divided by a small temperature and sums of squared correlations keep
    only two or three significant digits; the losses are cheap next to the encoder.
    """

    def upcast(value: Any) -> Any:
        if isinstance(value, Tensor) and value.dtype in (torch.float16, torch.bfloat16):
            return value.float()
        return value

    @functools.wraps(loss)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):
            args = tuple(upcast(v) for v in args)
            kwargs = {k: upcast(v) for k, v in kwargs.items()}
            return loss(*args, **kwargs)

    return cast(_Loss, wrapper)


def _world() -> tuple[int, int]:
    """(rank, world_size) of the default process group, or (0, 1) outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """``all_gather`` whose backward hands each process the gradient of its own rows.

    Every process computes its loss from all processes' rows, so the gradient of a process's
    rows is the sum over processes of their losses' gradients: all-reduce (sum) the incoming
    gradient and keep this process's slice. Data-parallel averaging then divides by the world
    size, which yields the gradient of the mean loss. Returning the local slice without the
    sum is the classic bug that shrinks gradients by ``1 / world_size``.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        rank, world_size = _world()
        parts = [torch.empty_like(x) for _ in range(world_size)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank = rank
        ctx.batch_size = x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.batch_size
        return grad[start : start + ctx.batch_size]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all processes along the batch axis, keeping the gradient.

    Outside ``torch.distributed`` or with a single process, returns ``x`` unchanged.

    Args:
        x: This process's rows. Shape: (batch_size, ...), the same on every process.

    Returns:
        Rows of process 0, then process 1, ... Shape: (world_size * batch_size, ...).
    """
    _, world_size = _world()
    if world_size == 1:
        return x
    return _GatherWithGrad.apply(x)


def _check_pair(z_a: Tensor, z_b: Tensor, name: str, *, min_batch: int = 1) -> None:
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise MusicSSLError(
            f"{name}: expected two embeddings of the same shape (batch_size, dim), "
            f"got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if z_a.shape[0] < min_batch:
        raise MusicSSLError(
            f"{name}: needs a batch of at least {min_batch} pairs, got {z_a.shape[0]}"
        )
