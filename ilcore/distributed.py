"""Data-parallel training across processes started by ``torchrun``.

``torchrun --nproc-per-node N -m ilcore train bc ...`` sets RANK / WORLD_SIZE / LOCAL_RANK and a
rendezvous address in each process's environment; :func:`init_from_env` joins the group (gloo
on CPU, nccl on GPU). Trainers then read :func:`current` and, when the world has more than one
process, each rank trains on its share of every global minibatch and the gradients are averaged
with :func:`average_gradients`, so a step sees the same global batch as a single process.
Outside torchrun everything here is a no-op.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist

from ilcore.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the group: ``rank`` of ``world_size`` (``local_rank`` on this host)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run (checkpoint, history, plots) and prints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"The environment variable {name}={value!r} is not an integer (set by torchrun).") from None


def env_local_rank() -> int:
    """This process's index on its host as torchrun set it (0 outside torchrun)."""
    return _env_int("LOCAL_RANK", 0)


def launched_by_torchrun() -> bool:
    return _env_int("WORLD_SIZE", 1) > 1


def current() -> DistContext:
    """The group this process belongs to (a world of one when torch.distributed is not initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=_env_int("LOCAL_RANK", 0),
                       local_world_size=_env_int("LOCAL_WORLD_SIZE", dist.get_world_size()))


def init_from_env(device: torch.device) -> DistContext:
    """Join the process group torchrun described in the environment (no-op for a single process).

    gloo for CPU training, nccl for CUDA (each rank then works on its own GPU).
    """
    if not launched_by_torchrun():
        return DistContext()
    if not dist.is_available():
        raise ConfigError("This torch build has no torch.distributed, so it cannot train under torchrun.")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return current()


SHUTDOWN_WAIT_S = 120


def shutdown() -> None:
    """Leave the process group once every rank is done with it.

    The two-rank test once saw a non-main rank die with SIGABRT ("terminate called without an
    active exception") on a loaded machine; the likely cause, not reproduced, is that rank leaving
    the gloo group while rank 0 still used it (writing the checkpoint), so CPU ranks first meet at
    a barrier; it gives up after ``SHUTDOWN_WAIT_S`` seconds (a peer that
    crashed) instead of waiting for gloo's 30-minute default."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if dist.get_world_size() > 1 and dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=SHUTDOWN_WAIT_S))
    except RuntimeError:
        pass  # a peer is gone: nothing left to wait for
    finally:
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over ranks (returns the input unchanged for a single process)."""
    if current().active:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def average_gradients(params: Iterable[torch.nn.Parameter], world_size: int) -> None:
    """Replace every gradient by its mean over ranks, in one flat all-reduce.

    A parameter without a gradient on this rank (an empty local batch) counts as zero, so every
    rank takes part in the same collective.
    """
    if world_size <= 1:
        return
    params = list(params)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    all_reduce_sum(flat)
    flat /= world_size
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def broadcast_state(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (no-op for a single process)."""
    if not current().active:
        return
    for t in module.state_dict().values():
        dist.broadcast(t, src=0)


def rank_slice(batch: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's share of a global minibatch of indices ``(..., B)``: every world_size-th column."""
    return batch[..., ctx.rank::ctx.world_size] if ctx.active else batch
