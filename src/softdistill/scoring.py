"""Scoring a set of learned or real steps: replay them on networks, count what they get right.

The low layer under :mod:`softdistill.evaluation`, :mod:`softdistill.baselines` and
:mod:`softdistill.protocol` (it imports only the core, the data types and torch): the accuracy of
trained weights on a split, the detached replay of steps on several inits, and the "random real
examples in the synthetic set's shape" that the baselines and ``x_init: real`` start from.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softdistill.core import SyntheticSet, forward, layout_steps, unroll
from softdistill.data import Split
from softdistill.typing import Params, Step

__all__ = [
    "EvalResult",
    "accuracy",
    "evaluate_steps",
    "evaluate_synthetic",
    "predict",
    "class_pool",
    "random_real_indices",
    "random_real_steps",
    "replay",
]


@dataclass
class EvalResult:
    """Accuracy of several trained networks (fractions in [0, 1])."""

    per_net: list[float]
    extra: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.per_net)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.per_net) if len(self.per_net) > 1 else 0.0

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "per_net": self.per_net, **self.extra}

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f}% ± {100 * self.std:.2f}"


@torch.no_grad()
def accuracy(model: nn.Module, params: Params, split: Split, batch_size: int = 512) -> float:
    """Fraction of ``split`` classified correctly by ``f(.; params)``."""
    correct = 0
    for i in range(0, len(split), batch_size):
        logits = forward(model, params, split.x[i : i + batch_size])
        correct += (logits.argmax(-1) == split.y[i : i + batch_size]).sum().item()
    return correct / len(split)


@torch.no_grad()
def predict(model: nn.Module, params: Params, x: Tensor, batch_size: int = 512) -> Tensor:
    """Predicted classes of ``f(x; params)``, ``(N,)``."""
    return torch.cat(
        [
            forward(model, params, x[i : i + batch_size]).argmax(-1)
            for i in range(0, len(x), batch_size)
        ]
    )


def replay(model: nn.Module, nets: Sequence[Params], steps: Sequence[Step]) -> list[Params]:
    """Each of ``nets`` trained with ``steps`` (detached replay): the final weights."""
    return [unroll(model, p, steps)[-1] for p in nets]


def evaluate_steps(
    model: nn.Module, nets: Sequence[Params], steps: Sequence[Step], test: Split
) -> EvalResult:
    """Train each of ``nets`` with ``steps`` (detached replay), return test accuracies."""
    return EvalResult([accuracy(model, p, test) for p in replay(model, nets, steps)])


def evaluate_synthetic(
    model: nn.Module, nets: Sequence[Params], syn: SyntheticSet, test: Split
) -> EvalResult:
    """Replay the learned steps of ``syn`` on each of ``nets``."""
    return evaluate_steps(model, nets, syn.detached_steps(), test)


def class_pool(train: Split, c: int, need: int) -> Tensor:
    """Indices (on CPU) of the training examples of class ``c``; at least ``need`` of them."""
    pool = (train.y.cpu() == c).nonzero().flatten()
    if len(pool) < need:
        raise ValueError(f"class {c} has {len(pool)} training examples, need {need}")
    return pool


def random_real_indices(
    train: Split,
    classes: Sequence[int],
    per_class: int,
    n_batches: int,
    generator: torch.Generator,
    *,
    distinct: bool,
) -> list[Tensor]:
    """Random training examples in the synthetic set's layout: per batch, ``per_class``
    indices (on CPU) of each of ``classes`` in turn.

    ``distinct``: no example twice in the whole set (one draw per class, example ``j`` of a
    class in batch ``j // per_class``: the random-real baseline); otherwise each batch is its own
    draw (``x_init: real``).
    """
    if distinct:
        need = per_class * n_batches
        drawn = []
        for c in classes:
            pool = class_pool(train, c, need)
            drawn.append(pool[torch.randperm(len(pool), generator=generator)[:need]])
        return [
            torch.cat([d[b * per_class : (b + 1) * per_class] for d in drawn])
            for b in range(n_batches)
        ]
    pools = {c: class_pool(train, c, per_class) for c in classes}
    return [
        torch.cat(
            [
                pools[c][torch.randperm(len(pools[c]), generator=generator)[:per_class]]
                for c in classes
            ]
        )
        for _ in range(n_batches)
    ]


def random_real_steps(
    train: Split,
    classes: Sequence[int],
    per_class: int,
    n_batches: int,
    lrs: Tensor,
    n_classes: int,
    generator: torch.Generator,
) -> list[Step]:
    """Random real training examples in the synthetic set's shape, with one-hot labels.

    ``n_batches`` batches of ``per_class`` examples of each of ``classes``, laid out as the
    synthetic set's (:func:`softdistill.core.layout_steps`; ``len(lrs)`` is T).
    """
    xs, ys = [], []
    for idx in random_real_indices(train, classes, per_class, n_batches, generator, distinct=False):
        idx = idx.to(train.x.device)
        xs.append(train.x[idx])
        ys.append(F.one_hot(train.y[idx], n_classes).to(train.x.dtype))
    return layout_steps(xs, ys, lrs)
