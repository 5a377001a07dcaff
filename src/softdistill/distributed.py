"""Distributed distillation with ``torch.distributed``, launched by ``torchrun``.

``torchrun --nproc-per-node N -m softdistill distill ...`` starts N processes and sets the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); the CLI
calls :func:`init_from_env`, which joins the process group (gloo on CPU, NCCL on CUDA, one GPU
per process). Each rank computes the hypergradient of its share of the inner nets
(:class:`~softdistill.nets.NetSource`); :func:`all_reduce_mean` averages loss and gradients
over all nets of all ranks before the outer step, so every rank takes the same Adam step and
keeps an identical synthetic set. Only rank 0 writes files.

Without ``torchrun`` (or with one process) everything here is a no-op: the single-process path
is the same code with world size 1.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from softdistill.errors import ConfigError

__all__ = [
    "MACHINE_KEYS",
    "all_reduce_mean",
    "barrier",
    "check_same_config",
    "init_from_env",
    "is_main",
    "local_device",
    "process_group",
    "rank_world",
    "shutdown",
]

# Config keys that may legitimately differ between ranks (paths and devices of each machine).
MACHINE_KEYS = ("device", "data_dir")


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0 (the only rank that writes files, logs progress and evaluates)."""
    return rank_world()[0] == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(device: torch.device, timeout: timedelta | None = None) -> torch.device:
    """Join the process group described by torchrun's environment; return this rank's device.

    Does nothing (returns ``device``) unless started by ``torchrun`` with more than one process.
    CUDA ranks use NCCL and GPU ``LOCAL_RANK``; CPU ranks use gloo. ``timeout``: how long a
    collective waits for the other ranks (torch's default when None).
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return device
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run a single process")
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"process with LOCAL_RANK {local_rank} has no GPU: this machine has "
                f"{torch.cuda.device_count()}; start at most that many processes per node"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device, timeout=timeout)
    else:
        dist.init_process_group("gloo", timeout=timeout)
    return device


@contextmanager
def process_group(device: torch.device, timeout: timedelta | None = None) -> Iterator[torch.device]:
    """:func:`init_from_env` for the duration of a command; leaves the group it created.

    On success every rank waits for the others before leaving (rank 0 may still be evaluating
    or writing): a rank that tears the group down while a peer still uses it can abort in
    gloo's threads. On an error the rank leaves at once (torchrun stops the others).
    """
    created = launched_by_torchrun() and not (dist.is_available() and dist.is_initialized())
    device = init_from_env(device, timeout)
    ok = False
    try:
        yield device
        ok = True
    finally:
        if created:
            if ok:
                barrier()
            shutdown()


def local_device(device: torch.device) -> torch.device:
    """This rank's GPU when ``device`` is CUDA in a process group (set by init_from_env)."""
    if device.type == "cuda" and rank_world()[1] > 1:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if rank_world()[1] > 1:
        dist.barrier()


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def check_same_config(config: dict[str, Any], what: str = "configuration") -> None:
    """ConfigError on every rank unless all ranks hold the same ``config``.

    Compares a SHA-256 of the canonical JSON (keys in :data:`MACHINE_KEYS` left out); on a
    mismatch, names the keys that differ and their values on each rank.
    """
    rank, world = rank_world()
    if world == 1:
        return
    shared = {k: v for k, v in config.items() if k not in MACHINE_KEYS}
    text = json.dumps(shared, sort_keys=True, default=str)
    digest = torch.frombuffer(bytearray(hashlib.sha256(text.encode()).digest()), dtype=torch.uint8)
    digest = digest.to(torch.int64).to(_comm_device())
    digests = [torch.empty_like(digest) for _ in range(world)]
    dist.all_gather(digests, digest)
    if all(torch.equal(d, digests[0]) for d in digests):
        return
    configs: list[Any] = [None] * world
    dist.all_gather_object(configs, shared)
    diffs = []
    for key in sorted(set().union(*(c.keys() for c in configs))):
        values = [c.get(key, "<missing>") for c in configs]
        if any(v != values[0] for v in values):
            diffs.append(f"{key}: " + ", ".join(f"rank {r} {v!r}" for r, v in enumerate(values)))
    raise ConfigError(
        f"the {what} differs across the {world} processes (every rank must be started with the "
        f"same flags and config file): " + "; ".join(diffs)
    )


def all_reduce_mean(
    loss: Tensor, grads: Sequence[Tensor], n_local: int, n_total: int
) -> tuple[Tensor, list[Tensor]]:
    """Average ``loss`` and ``grads`` over all nets of all ranks.

    Each rank passes the mean over its ``n_local`` nets; the result is the mean over all
    ``n_total`` nets (the local means weighted by their counts), the same on every rank.
    One all-reduce of one flat tensor.
    """
    if rank_world()[1] == 1:
        return loss, list(grads)
    flat = torch.cat([loss.reshape(1), *(g.reshape(-1) for g in grads)]) * n_local
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat = flat / n_total
    out, pos = [], 1
    for g in grads:
        out.append(flat[pos : pos + g.numel()].view_as(g))
        pos += g.numel()
    return flat[0], out


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (a decision only rank 0 can take, e.g. to stop early)."""
    return bool(broadcast_int(int(flag)))


def broadcast_int(value: int) -> int:
    """Rank 0's ``value`` on every rank (e.g. the start that rank 0 chose on held-out data)."""
    if rank_world()[1] == 1:
        return value
    t = torch.tensor([value], device=_comm_device())
    dist.broadcast(t, src=0)
    return int(t.item())
