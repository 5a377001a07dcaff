"""Where inner networks come from: seeded random streams and net sources.

A *net source* hands the outer loop the initial weights theta_0 of its inner networks at every
outer step: ``fixed`` (the same ``n_nets`` inits for the whole run, the paper's "known init"),
``random`` (``n_nets`` fresh inits every step, "unknown init") or ``pool:PATH`` (``n_nets`` nets
drawn at random from a pool of pretrained nets every step). Evaluation nets come from the same
place: the fixed inits, ``test_n_nets`` fresh inits from a stream never used for training, or
the held-out ``test_pool``.

Sharding (distributed runs): of the ``n_nets`` nets of a step, rank ``r`` of ``world_size``
computes the contiguous block ``block(n_nets, r, world_size)``. Every rank draws from the same
seeded stream, so all ranks agree on the step's global set of nets without communicating:

- ``fixed``/``random``: every rank makes all ``n_nets`` inits (cheap next to the unroll) and
  keeps its block, so a run over the same nets gives the same result at any world size.
- ``pool``: rank ``r`` loads only its shard of the pool (the nets ``block(N, r, world_size)``)
  and takes its block's share of the step's nets from its own shard, sampled without
  replacement. With ``n_nets`` equal to the pool size every net is used at every step, and the
  result again does not depend on the world size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from softdistill.config import Config
from softdistill.errors import ConfigError
from softdistill.models import init_params
from softdistill.pool import check_params, load_pool
from softdistill.typing import Params

__all__ = ["STREAMS", "NetSource", "block", "eval_nets", "make_nets", "stream"]

# Independent random streams of a run, all derived from ``cfg.seed``.
STREAMS = {
    "syn": 1,
    "nets": 2,
    "data": 3,
    "test_nets": 4,
    "truncation": 5,
    "val": 6,
    "input_noise": 7,
}


def stream(seed: int, name: str) -> torch.Generator:
    """The CPU generator of stream ``name`` for run seed ``seed``."""
    return torch.Generator().manual_seed(seed * 1000 + STREAMS[name])


def block(n: int, rank: int, world_size: int) -> range:
    """The contiguous share of ``range(n)`` of ``rank`` (sizes differ by at most one)."""
    return range(n * rank // world_size, n * (rank + 1) // world_size)


def make_nets(
    model: nn.Module, cfg: Config, n: int, generator: torch.Generator, *, device, dtype
) -> list[Params]:
    """``n`` fresh initialisations theta_0 following ``cfg.init``/``cfg.init_param``."""
    return [
        init_params(
            model, cfg.init, cfg.init_param, generator=generator, device=device, dtype=dtype
        )
        for _ in range(n)
    ]


class NetSource:
    """The inner networks of every outer step (``cfg.nets``: fixed, random or pool:PATH).

    Args:
        model: template network.
        cfg: the run's configuration.
        sample_shape, n_classes: the dataset's (checked against a pool's when given).
        rank, world_size: this process's share of the nets (see the module docstring).
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: Config,
        *,
        device,
        dtype,
        sample_shape=None,
        n_classes: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.model, self.cfg, self.device, self.dtype = model, cfg, device, dtype
        self.rank, self.world_size = rank, world_size
        if cfg.n_nets < world_size:
            raise ConfigError(
                f"n_nets {cfg.n_nets} is smaller than the {world_size} processes: every process "
                "needs at least one net per outer step; raise n_nets or use fewer processes"
            )
        self.local = block(cfg.n_nets, rank, world_size)  # this rank's nets of a step
        self.generator = stream(cfg.seed, "nets")
        self.fixed = (
            make_nets(model, cfg, cfg.n_nets, self.generator, device=device, dtype=dtype)
            if cfg.nets == "fixed"
            else None
        )
        self.pool = None
        self.shard: list[Params] = []
        if cfg.pool_path is not None:
            self.pool = load_pool(cfg.pool_path)
            if sample_shape is not None:
                self.pool.check_fits(cfg.arch, cfg.arch_args, sample_shape, n_classes, "nets pool")
            n = self.pool.n_nets
            if cfg.n_nets > n:
                raise ConfigError(
                    f"n_nets {cfg.n_nets} exceeds the {n} nets of pool {cfg.pool_path}"
                )
            # The per-rank shares of the pool and of a step's nets; a share of a step never
            # exceeds the share of the pool because both are blocks of the same proportions.
            self.shards = [block(n, r, world_size) for r in range(world_size)]
            self.takes = [len(block(cfg.n_nets, r, world_size)) for r in range(world_size)]
            self.shard = self.pool.load(self.shards[rank], device=device, dtype=dtype)
            for i, p in zip(self.shards[rank], self.shard):
                check_params(model, p, f"net {i} of pool {cfg.pool_path}")

    @property
    def n_local(self) -> int:
        """Nets this rank computes per outer step."""
        return len(self.local)

    def draw(self) -> list[Params]:
        """theta_0 of each of this rank's inner nets for the next outer step."""
        if self.fixed is not None:
            return [self.fixed[i] for i in self.local]
        if self.pool is not None:
            mine: list[Params] = []
            for r, (shard, take) in enumerate(zip(self.shards, self.takes)):
                # every rank draws every rank's sample: the generator stays in step everywhere
                idx = torch.randperm(len(shard), generator=self.generator)[:take]
                if r == self.rank:
                    mine = [self.shard[i] for i in idx.tolist()]
            return mine
        nets = make_nets(
            self.model,
            self.cfg,
            self.cfg.n_nets,
            self.generator,
            device=self.device,
            dtype=self.dtype,
        )
        return [nets[i] for i in self.local]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "fixed": self.fixed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        if state["fixed"] is not None:
            self.fixed = [{k: v.to(self.device) for k, v in p.items()} for p in state["fixed"]]


def eval_nets(
    model: nn.Module,
    cfg: Config,
    fixed: list[Params] | None,
    n: int,
    *,
    device,
    dtype,
    sample_shape=None,
    n_classes: int | None = None,
) -> list[Params]:
    """Networks to evaluate on.

    The fixed inits (``nets: fixed``); the first ``n`` nets of ``test_pool`` (all of them if it
    is smaller), else of the training pool (``nets: pool:PATH`` without a test pool: the nets
    distilled on, as the original's ``same_as_train``); else ``n`` fresh inits never trained on.
    """
    if fixed is not None:
        return [{k: v.to(device=device, dtype=dtype) for k, v in p.items()} for p in fixed]
    path = cfg.test_pool or cfg.pool_path
    if path is not None:
        pool = load_pool(path)
        key = "test_pool" if cfg.test_pool else "nets pool"
        if sample_shape is not None:
            pool.check_fits(cfg.arch, cfg.arch_args, sample_shape, n_classes, key)
        nets = pool.load(range(min(n, pool.n_nets)), device=device, dtype=dtype)
        for i, p in enumerate(nets):
            check_params(model, p, f"net {i} of pool {path}")
        return nets
    return make_nets(model, cfg, n, stream(cfg.seed, "test_nets"), device=device, dtype=dtype)
