"""The worker of tests/test_distributed.py: one rank of a gloo process group (spawned)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from softdistill.cli import main
from softdistill.config import Config, ConfigError
from softdistill.distributed import check_same_config

TINY = ["--dataset", "digits", "--arch", "mlp", "--arch_args", "hidden=[16]", "--quiet"]
TINY += ["--dtype", "float64", "--outer_steps", "3", "--batch_size", "32", "--log_every", "1"]
TINY += ["--n_batches", "2", "--n_epochs", "2", "--init_lr", "0.1", "--lr", "0.05"]
TINY += ["--baselines", "--test_n_nets", "2", "--n_nets", "4"]


def cases(pool: Path) -> dict[str, list[str]]:
    """Runs over the same set of nets at any world size: 4 nets per step (2 per rank)."""
    return {
        "fixed": ["--nets", "fixed"],
        "random": ["--nets", "random"],
        "pool": ["--nets", f"pool:{pool}", "--objective", "attack"],
    }


def run_cases(pool: Path, out: Path) -> None:
    """``softdistill distill`` for every case into ``out/<case>``."""
    for name, args in cases(pool).items():
        code = main(["distill", *TINY, *args, "--out", str(out / name)])
        if code != 0:
            raise RuntimeError(f"case {name} exited with {code}")


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
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"mismatch{rank}.txt").write_text(mismatch)
        run_cases(Path(pool), Path(out))
    finally:
        dist.destroy_process_group()
