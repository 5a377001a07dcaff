"""The worker of tests/test_distributed.py: one rank of a gloo process group (spawned)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from helpers import blobs
from softdistill.config import Config, ConfigError
from softdistill.distillation import distill
from softdistill.distributed import check_same_config
from softdistill.models import build

TINY = dict(
    arch="mlp",
    arch_args={"hidden": [16]},
    dtype="float64",
    outer_steps=3,
    batch_size=32,
    n_batches=2,
    n_epochs=2,
    init_lr=0.1,
    lr=0.05,
    n_nets=4,
)


def cases(pool: Path) -> dict[str, Config]:
    """Runs over the same set of nets at any world size: 4 nets per step (2 per rank)."""
    return {
        "fixed": Config(**TINY, nets="fixed").validate(),
        "random": Config(**TINY, nets="random").validate(),
        "pool": Config(**TINY, nets=f"pool:{pool}", objective="attack").validate(),
        # held-out selection and early stop: only rank 0 scores, every rank must stop with it
        "heldout": Config(
            **{**TINY, "outer_steps": 6},
            nets="fixed",
            val_size=30,
            eval_every=2,
            stop_at_val_acc=0.01,
        ).validate(),
        # restarts: rank 0 alone scores the starts, every rank must continue the one it chose
        "restarts": Config(
            **{**TINY, "outer_steps": 6},
            nets="fixed",
            val_size=30,
            eval_every=2,
            restarts=3,
            restart_steps=2,
            seed=3,  # a seed whose choice is not the first start (rank 1 cannot pass by default)
        ).validate(),
    }


def run_cases(pool: Path) -> dict[str, list[torch.Tensor] | int]:
    """The synthetic set's tensors after ``distill`` of every case, and its outer steps."""
    data = blobs()
    out = {}
    for name, cfg in cases(pool).items():
        model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
        result = distill(cfg, data, model)
        out[name] = [p.detach().clone() for p in result.syn.parameters()]
        out[f"{name}_steps"] = result.outer_steps
    return out


def worker(rank: int, world_size: int, init_file: str, pool: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        # a config that differs on one rank is refused on every rank, naming the key
        try:
            check_same_config({**Config().to_dict(), "lr": [0.05, 0.07][rank]})
            mismatch = "no error"
        except ConfigError as e:
            mismatch = str(e)
        check_same_config({**Config().to_dict(), "device": f"cpu:{rank}"})  # a machine key
        results = {"mismatch": mismatch, **run_cases(Path(pool))}
        torch.save(results, Path(out) / f"rank{rank}.pt")
        dist.barrier()  # leave together: tearing gloo down under a busy peer can abort it
    finally:
        dist.destroy_process_group()
