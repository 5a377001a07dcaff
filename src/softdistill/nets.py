"""Where inner networks come from: seeded random streams and net sources.

A *net source* hands the outer loop the initial weights theta_0 of its inner networks at every
outer step: ``fixed`` (the same ``n_nets`` inits for the whole run, the paper's "known init") or
``random`` (``n_nets`` fresh inits every step, "unknown init"). Evaluation nets come from the same
place: the fixed inits, or ``test_n_nets`` fresh inits from a stream never used for training.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from softdistill.config import Config
from softdistill.models import init_params
from softdistill.typing import Params

__all__ = ["STREAMS", "NetSource", "eval_nets", "make_nets", "stream"]

# Independent random streams of a run, all derived from ``cfg.seed``.
STREAMS = {"syn": 1, "nets": 2, "data": 3, "test_nets": 4, "truncation": 5}


def stream(seed: int, name: str) -> torch.Generator:
    """The CPU generator of stream ``name`` for run seed ``seed``."""
    return torch.Generator().manual_seed(seed * 1000 + STREAMS[name])


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
    """The inner networks of every outer step (``cfg.nets``: fixed or random)."""

    def __init__(self, model: nn.Module, cfg: Config, *, device, dtype) -> None:
        self.model, self.cfg, self.device, self.dtype = model, cfg, device, dtype
        self.generator = stream(cfg.seed, "nets")
        self.fixed = (
            make_nets(model, cfg, cfg.n_nets, self.generator, device=device, dtype=dtype)
            if cfg.nets == "fixed"
            else None
        )

    def draw(self) -> list[Params]:
        """theta_0 of each inner net for the next outer step."""
        if self.fixed is not None:
            return self.fixed
        return make_nets(
            self.model,
            self.cfg,
            self.cfg.n_nets,
            self.generator,
            device=self.device,
            dtype=self.dtype,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "fixed": self.fixed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        if state["fixed"] is not None:
            self.fixed = [{k: v.to(self.device) for k, v in p.items()} for p in state["fixed"]]


def eval_nets(
    model: nn.Module, cfg: Config, fixed: list[Params] | None, n: int, *, device, dtype
) -> list[Params]:
    """Networks to evaluate on: the fixed inits, else ``n`` fresh inits (never trained on)."""
    if fixed is not None:
        return [{k: v.to(device=device, dtype=dtype) for k, v in p.items()} for p in fixed]
    return make_nets(model, cfg, n, stream(cfg.seed, "test_nets"), device=device, dtype=dtype)
