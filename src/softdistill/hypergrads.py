"""The hypergradient methods a run can choose (``hypergrad``): one registry entry each.

An entry names a method, says whether it is exact, checks the settings it takes (``window``,
``keep_every``) and turns them into the keyword arguments of
:func:`softdistill.core.hypergradient` for one outer step. The config's choices and messages,
the outer loop, ``auto`` and the docs read this registry; the math lives in ``core/``.

Adding a method: its computation in ``core/hypergrad.py`` if it is new (a ``method`` of
``hypergradient``), one :func:`register` call here, and a test (gradients against ``autograd``
in float64 where it is exact). Free of torch, like the config, so that ``--help`` stays instant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from softdistill.errors import ConfigError

__all__ = ["HYPERGRAD_METHODS", "HypergradMethod", "check", "choices", "get", "register"]


@dataclass(frozen=True)
class HypergradMethod:
    """One ``hypergrad`` value."""

    name: str
    summary: str  # one line for the docs
    core_method: str  # the ``method`` of core.hypergradient it runs
    exact: bool  # the true gradient of the outer loss (up to rounding)
    windowed: bool = False  # differentiates only the last ``window`` inner steps
    random_length: bool = False  # draws its unroll length every outer step (RaT-BPTT)
    keeps_graph: bool = False  # keeps the whole inner graph: keep_every must be 1

    def options(
        self,
        n_steps: int,
        *,
        window: int | None,
        keep_every: int,
        draw_length: Callable[[int, int], int],
        auto_keep_every: Callable[[int], int],
    ) -> dict[str, Any]:
        """``hypergradient``'s keyword arguments for one outer step (T = ``n_steps``).

        ``draw_length(T, window)`` draws a random unroll length (``random_length`` only);
        ``auto_keep_every(span)`` is the memory-minimising ``keep_every`` (for ``keep_every`` 0).
        """
        opts: dict[str, Any] = {"method": self.core_method}
        if not self.keeps_graph:
            span = n_steps if window is None else min(window, n_steps)
            opts["keep_every"] = keep_every or auto_keep_every(span)
        if window is not None:
            opts["window"] = window
        if self.random_length:
            opts["n_steps"] = draw_length(n_steps, window)
        return opts


HYPERGRAD_METHODS: dict[str, HypergradMethod] = {}


def register(method: HypergradMethod) -> HypergradMethod:
    """Add ``method`` to the registry (its name becomes a ``hypergrad`` value)."""
    if method.name in HYPERGRAD_METHODS or method.name == "auto":
        raise ValueError(f"hypergradient method {method.name!r} is registered already")
    HYPERGRAD_METHODS[method.name] = method
    return method


def choices() -> tuple[str, ...]:
    """Every ``hypergrad`` value: ``auto`` (chosen per run, see distillation.choose_hypergrad)
    and the registered methods."""
    return ("auto", *HYPERGRAD_METHODS)


def get(name: str) -> HypergradMethod:
    if name not in HYPERGRAD_METHODS:
        raise ConfigError(f"unknown hypergrad {name!r}; choose from {', '.join(choices())}")
    return HYPERGRAD_METHODS[name]


def _names(pred: Callable[[HypergradMethod], bool]) -> str:
    names = [m.name for m in HYPERGRAD_METHODS.values() if pred(m)]
    return ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1]


def check(name: str, *, window: int | None, keep_every: int) -> None:
    """Raise :class:`ConfigError` unless ``window`` and ``keep_every`` suit method ``name``."""
    method = None if name == "auto" else get(name)
    if method is not None and method.keeps_graph and keep_every != 1:
        raise ConfigError(
            f"keep_every={keep_every} needs hypergrad {_names(lambda m: not m.keeps_graph)}; "
            f"{name} keeps the whole graph"
        )
    windowed = method is not None and method.windowed
    if windowed and (window is None or window < 1):
        raise ConfigError(
            f"hypergrad {name} needs window >= 1 (differentiated steps), got {window}"
        )
    if not windowed and window is not None:
        raise ConfigError(
            f"window={window} applies to hypergrad {_names(lambda m: m.windowed)}, not {name!r}"
        )


register(
    HypergradMethod(
        "reverse",
        "exact and memory-lean: a reverse sweep over the inner steps, recomputing each",
        core_method="reverse",
        exact=True,
    )
)
register(
    HypergradMethod(
        "autograd",
        "exact: plain autograd through the whole kept inner graph (the reference)",
        core_method="autograd",
        exact=True,
        keeps_graph=True,
    )
)
register(
    HypergradMethod(
        "truncated",
        "approximate: only the last `window` inner steps differentiated",
        core_method="truncated",
        exact=False,
        windowed=True,
    )
)
register(
    HypergradMethod(
        "random_truncated",
        "approximate (RaT-BPTT): a random unroll length per outer step, its last `window` "
        "steps differentiated",
        core_method="truncated",
        exact=False,
        windowed=True,
        random_length=True,
    )
)
