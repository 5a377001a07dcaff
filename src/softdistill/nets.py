"""Where inner networks come from: seeded random streams and net sources.

A *net source* hands the outer loop the initial weights theta_0 of its inner networks at every
outer step: ``fixed`` (the same ``n_nets`` inits for the whole run, the paper's "known init"),
``random`` (``n_nets`` fresh inits every step, "unknown init") or ``pool:PATH`` (``n_nets`` nets
drawn at random from a pool of pretrained nets every step). Evaluation nets come from the same
place: the fixed inits, ``test_n_nets`` fresh inits from a stream never used for training, or
the held-out ``test_pool``.

What this module needs of a run's settings is a :class:`NetSpec` (the architecture, the init,
the source, the seed): the assembly builds one with :meth:`NetSpec.of`, and nothing here reads
the settings object itself.

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

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from softdistill.errors import ConfigError
from softdistill.models import init_params
from softdistill.pool import check_params, load_pool
from softdistill.seeds import stream
from softdistill.typing import Params

__all__ = ["NetSource", "NetSpec", "block", "eval_nets", "make_nets"]


def block(n: int, rank: int, world_size: int) -> range:
    """The contiguous share of ``range(n)`` of ``rank`` (sizes differ by at most one)."""
    return range(n * rank // world_size, n * (rank + 1) // world_size)


@dataclass(frozen=True)
class NetSpec:
    """Where a run's inner and evaluation networks come from (the settings of the same names).

    Args:
        arch, arch_args: the architecture (checked against a pool's).
        init, init_param: the weight init of fresh nets and its gain / slope / std.
        nets: ``fixed``, ``random`` or ``pool:PATH``.
        n_nets: inner nets per outer step.
        seed: the run's seed (the ``nets`` and ``test_nets`` streams derive from it).
        test_pool: the held-out pool evaluated on, if any.
    """

    arch: str = "convnet"
    arch_args: Mapping[str, Any] = field(default_factory=dict)
    init: str = "xavier"
    init_param: float = 1.0
    nets: str = "fixed"
    n_nets: int = 1
    seed: int = 0
    test_pool: str | None = None

    @classmethod
    def of(cls, settings: Any, **changes: Any) -> NetSpec:
        """The spec of any object with attributes of these names (a run's ``Config``), with
        ``changes`` laid over them."""
        values = {f.name: getattr(settings, f.name) for f in fields(cls)}
        return cls(**{**values, **changes})

    @property
    def pool_path(self) -> str | None:
        """The pool folder of ``nets: pool:PATH``, else None."""
        return self.nets[5:] if self.nets.startswith("pool:") else None


def make_nets(
    model: nn.Module, spec: NetSpec, n: int, generator: torch.Generator, *, device, dtype
) -> list[Params]:
    """``n`` fresh initialisations theta_0 following ``spec.init``/``spec.init_param``."""
    return [
        init_params(
            model, spec.init, spec.init_param, generator=generator, device=device, dtype=dtype
        )
        for _ in range(n)
    ]


class NetSource:
    """The inner networks of every outer step (``spec.nets``: fixed, random or pool:PATH).

    Args:
        model: template network.
        spec: where the nets come from (:meth:`NetSpec.of` a run's settings).
        sample_shape, n_classes: the dataset's (checked against a pool's when given).
        rank, world_size: this process's share of the nets (see the module docstring).
    """

    def __init__(
        self,
        model: nn.Module,
        spec: NetSpec,
        *,
        device,
        dtype,
        sample_shape=None,
        n_classes: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.model, self.spec, self.device, self.dtype = model, spec, device, dtype
        self.rank, self.world_size = rank, world_size
        if spec.n_nets < world_size:
            raise ConfigError(
                f"n_nets {spec.n_nets} is smaller than the {world_size} processes: every process "
                "needs at least one net per outer step; raise n_nets or use fewer processes"
            )
        self.local = block(spec.n_nets, rank, world_size)  # this rank's nets of a step
        self.generator = stream(spec.seed, "nets")
        self.fixed = (
            make_nets(model, spec, spec.n_nets, self.generator, device=device, dtype=dtype)
            if spec.nets == "fixed"
            else None
        )
        self.pool = None
        self.shard: list[Params] = []
        if spec.pool_path is not None:
            self.pool = load_pool(spec.pool_path)
            if sample_shape is not None:
                self.pool.check_fits(
                    spec.arch, spec.arch_args, sample_shape, n_classes, "nets pool"
                )
            n = self.pool.n_nets
            if spec.n_nets > n:
                raise ConfigError(
                    f"n_nets {spec.n_nets} exceeds the {n} nets of pool {spec.pool_path}"
                )
            # The per-rank shares of the pool and of a step's nets; a share of a step never
            # exceeds the share of the pool because both are blocks of the same proportions.
            self.shards = [block(n, r, world_size) for r in range(world_size)]
            self.takes = [len(block(spec.n_nets, r, world_size)) for r in range(world_size)]
            self.shard = self.pool.load(self.shards[rank], device=device, dtype=dtype)
            for i, p in zip(self.shards[rank], self.shard):
                check_params(model, p, f"net {i} of pool {spec.pool_path}")

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
            self.spec,
            self.spec.n_nets,
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
    spec: NetSpec,
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
    path = spec.test_pool or spec.pool_path
    if path is not None:
        pool = load_pool(path)
        key = "test_pool" if spec.test_pool else "nets pool"
        if sample_shape is not None:
            pool.check_fits(spec.arch, spec.arch_args, sample_shape, n_classes, key)
        nets = pool.load(range(min(n, pool.n_nets)), device=device, dtype=dtype)
        for i, p in enumerate(nets):
            check_params(model, p, f"net {i} of pool {path}")
        return nets
    return make_nets(model, spec, n, stream(spec.seed, "test_nets"), device=device, dtype=dtype)
