"""One training loop: train networks on ``(x, y)`` for a while, by minibatches.

Every "train a network normally" of the package is :func:`fit`: the full-data reference
(:func:`softdistill.evaluation.train_full`), the nets of a pool (:mod:`softdistill.pool`) and
the from-scratch protocol (:func:`softdistill.protocol.train_scratch`). They differ only in the
:class:`FitSettings` (Adam or SGD, the lr schedule by epoch, a cap on steps), the loss (hard or
soft labels) and what they do with the result.

Several nets at once: give ``fit`` a list of initial weights and one generator per net; the
weights are stacked and every step is one vmapped forward and backward over all of them (Adam
and SGD are elementwise, so one optimizer over the stacked weights is one per net). Each net
draws its batch order from its own generator, exactly as it would alone; the results equal
training the nets one at a time up to float rounding (batched kernels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from softdistill.core import forward
from softdistill.typing import Params

__all__ = ["FitResult", "FitSettings", "fit", "step_decay"]

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class FitSettings:
    """How to train: ``epochs`` shuffled passes of ``batch_size`` examples.

    Args:
        optimizer: ``adam`` (with ``betas``) or ``sgd`` (with ``momentum``); both take
            ``weight_decay``.
        max_steps: stop after this many steps in all, even in the middle of an epoch (that
            partial epoch counts as the last); ``None``: whole epochs only.
        check_every_step: test each step's loss before it is applied, and stop at the first
            non-finite one, keeping the last finite weights (a ``.item()`` per step); otherwise
            each epoch's mean loss is tested when the epoch ends (one sync per epoch) and
            training stops there.
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0
    weight_decay: float = 0.0
    max_steps: int | None = None
    check_every_step: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(
                f"need epochs, batch_size >= 1 and lr > 0, got {self.epochs}, "
                f"{self.batch_size}, {self.lr}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 (None: no cap), got {self.max_steps}")


@dataclass
class FitResult:
    """What :func:`fit` returns, per net (lists of one entry for a single net).

    Attributes:
        params: the trained weights of each net, detached.
        epoch_losses: each net's mean training loss of every epoch run (a partial one included).
        last_loss: each net's loss of the last step applied (nan: none).
        steps: steps applied.
        diverged: whether training stopped at a non-finite loss.
    """

    params: list[Params]
    epoch_losses: list[list[float]] = field(default_factory=list)
    last_loss: list[float] = field(default_factory=list)
    steps: int = 0
    diverged: bool = False


def step_decay(lr: float, every: int, factor: float) -> Callable[[int], float]:
    """The lr of each epoch: ``lr`` times ``factor`` once per ``every`` epochs, e.g.
    ``step_decay(0.01, 30, 0.5)``; for :func:`fit`'s ``lr_at``."""
    if every < 1:
        raise ValueError(f"every must be >= 1 epoch, got {every}")
    return lambda epoch: lr * factor ** (epoch // every)


def fit(
    model: nn.Module,
    params0: Params | Sequence[Params],
    x: Tensor,
    y: Tensor,
    settings: FitSettings,
    *,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    lr_at: Callable[[int], float] | None = None,
    augment: Callable[[Tensor], Tensor] | None = None,
    on_epoch: Callable[[int, list[Params], list[float]], None] | None = None,
) -> FitResult:
    """Train ``f(.; params0)`` on ``(x, y)``; ``model`` and ``params0`` are left untouched.

    Args:
        params0: the initial weights, or a list of them (nets trained at once, stacked).
        x, y: the training inputs (anything indexable by a tensor of indices, e.g. a split's
            lazy 8-bit pixels) and targets (class indices or label vectors, as ``loss_fn``
            takes them).
        generator: the CPU generator of the batch order (one per net; ``None``: torch's global
            one).
        loss_fn: ``(logits, targets) -> mean loss``.
        lr_at: the lr of each epoch (0-based), set at its start; ``None``: ``settings.lr``.
        augment: applied to every batch of inputs (one net only).
        on_epoch: called after each epoch run (a partial or diverged one included) with
            ``(epochs done, weights, mean losses)``; the weights are the live ones (views, not
            copies): read them, do not change them.
    """
    several = not isinstance(params0, dict)
    inits = list(params0) if several else [params0]
    gens = list(generator) if isinstance(generator, Sequence) else [generator] * len(inits)
    if not inits or len(gens) != len(inits):
        raise ValueError(f"need one generator per net: {len(inits)} nets, {len(gens)} generators")
    if several and augment is not None:
        raise ValueError("augment is for one net at a time, not for stacked nets")
    k_nets, n = len(inits), len(y)
    device = y.device
    if several:
        names = list(inits[0])
        weights = {k: torch.stack([p[k].detach() for p in inits]).requires_grad_() for k in names}

        def one(params: Params, xb: Tensor, yb: Tensor) -> Tensor:
            return loss_fn(functional_call(model, params, (xb,)), yb)

        batched = vmap(one)  # (K stacked nets, (K, b, ...) inputs, (K, b) targets) -> (K,)

        def losses_of(idx: Tensor) -> Tensor:
            return batched(weights, x[idx], y[idx])

    else:
        weights = {k: v.detach().clone().requires_grad_(True) for k, v in inits[0].items()}

        def losses_of(idx: Tensor) -> Tensor:
            xb = x[idx[0]] if augment is None else augment(x[idx[0]])
            return loss_fn(forward(model, weights, xb), y[idx[0]]).unsqueeze(0)

    if settings.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(
            weights.values(),
            lr=settings.lr,
            betas=settings.betas,
            weight_decay=settings.weight_decay,
        )
    else:
        opt = torch.optim.SGD(
            list(weights.values()),
            lr=settings.lr,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
        )
    result = FitResult(params=[], last_loss=[math.nan] * k_nets)
    bs = settings.batch_size
    with torch.enable_grad():  # training, whatever the caller's grad mode
        for epoch in range(settings.epochs):
            if settings.max_steps is not None and result.steps >= settings.max_steps:
                break
            if lr_at is not None:
                for group in opt.param_groups:
                    group["lr"] = lr_at(epoch)
            order = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
            total, count = torch.zeros(k_nets, device=device), 0
            for i in range(0, n, bs):
                if settings.max_steps is not None and result.steps >= settings.max_steps:
                    break
                idx = order[:, i : i + bs]
                losses = losses_of(idx)
                if settings.check_every_step:
                    values = losses.detach().tolist()
                    if not all(map(math.isfinite, values)):
                        result.diverged = True
                        break
                    result.last_loss = values
                opt.zero_grad(set_to_none=True)
                losses.sum().backward()  # each net's loss reaches only its own weights
                opt.step()
                result.steps += 1
                total += losses.detach() * idx.shape[1]
                count += idx.shape[1]
            if not count:
                break  # diverged at the epoch's first step
            means = (total / count).tolist()
            result.epoch_losses.append(means)
            if not settings.check_every_step:
                result.last_loss = losses.detach().tolist()
                result.diverged = not all(map(math.isfinite, means))
            if on_epoch is not None:
                on_epoch(epoch + 1, _split(weights, several, k_nets, copy=False), means)
            if result.diverged:
                break
    result.params = _split(weights, several, k_nets, copy=True)
    result.epoch_losses = [list(e) for e in zip(*result.epoch_losses)] or [[] for _ in inits]
    return result


def _split(weights: Params, several: bool, k: int, *, copy: bool) -> list[Params]:
    """Each net's weights, detached (copies or views)."""
    if not several:
        out = [{name: v.detach() for name, v in weights.items()}]
    else:
        out = [{name: v[j].detach() for name, v in weights.items()} for j in range(k)]
    return [{name: v.clone() for name, v in p.items()} for p in out] if copy else out
