"""The outer objectives a run can choose (``objective``): one registry entry each.

An objective says what the nets trained on the synthetic set should do on real data. Every one
here is cross-entropy on the real batch against target labels: the true labels (``basic``,
``adapt``) or labels with one class relabelled (``attack``). An entry checks its settings and maps
the true labels to its targets; the config's choices and checks and the outer loss read it.

Adding an objective: one :func:`register` call here (its checks, its targets), and a test; an
objective with its own evaluation adds it to :func:`softdistill.api.evaluate_config` (as
``attack`` does). Free of torch, like the config (the targets use tensor methods only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from softdistill.errors import ConfigError

__all__ = ["OBJECTIVES", "Objective", "choices", "get", "register"]


def _true_labels(y: Any, cfg: Any) -> Any:
    return y


def _attack_labels(y: Any, cfg: Any) -> Any:
    """Real examples of ``attack_class`` should be classified as ``target_class``."""
    return y.masked_fill(y == cfg.attack_class, cfg.target_class)


def _no_checks(cfg: Any) -> None:
    pass


def _check_attack(cfg: Any) -> None:
    if cfg.attack_class == cfg.target_class:
        raise ConfigError(
            f"attack_class and target_class are both {cfg.attack_class}: nothing to attack"
        )


def _check_adapt(cfg: Any) -> None:
    if cfg.pool_path is None:
        raise ConfigError(
            "objective adapt needs nets pretrained on a source dataset: nets pool:PATH "
            f"(got nets {cfg.nets!r}); make a pool with `softdistill train`"
        )


@dataclass(frozen=True)
class Objective:
    """One ``objective`` value."""

    name: str
    summary: str  # one line for the docs
    targets: Callable[[Any, Any], Any] = _true_labels  # (true labels, config) -> target labels
    check: Callable[[Any], None] = _no_checks  # (config) -> None, or ConfigError
    class_keys: tuple[str, ...] = ()  # config keys that name classes (checked against the data)


OBJECTIVES: dict[str, Objective] = {}


def register(objective: Objective) -> Objective:
    """Add ``objective`` to the registry (its name becomes an ``objective`` value)."""
    if objective.name in OBJECTIVES:
        raise ValueError(f"objective {objective.name!r} is registered already")
    OBJECTIVES[objective.name] = objective
    return objective


def choices() -> tuple[str, ...]:
    return tuple(OBJECTIVES)


def get(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; choose from {', '.join(choices())}")
    return OBJECTIVES[name]


register(Objective("basic", "classify the real batch correctly (the method's objective)"))
register(
    Objective(
        "attack",
        "classify real attack_class examples as target_class, every other class correctly",
        targets=_attack_labels,
        check=_check_attack,
        class_keys=("attack_class", "target_class"),
    )
)
register(
    Objective(
        "adapt",
        "classify the real batch correctly, starting from nets pretrained on another dataset",
        check=_check_adapt,
    )
)
