"""Many inner networks at once: stacked weights evaluated with :func:`torch.func.vmap`.

``n_nets`` weight dicts become one dict of stacked tensors ``{name: (n_nets, *shape)}``, and
:class:`StackedNets` applies the template network to all of them in one call (vmap turns the
per-net convolutions and matrix products into batched ones). The nets are independent, so the
inner loss summed over nets has the per-net gradients as its gradient w.r.t. the stacked weights:
an inner step of the stacked "network" is exactly one inner step of every net. Any hypergradient
method then runs unchanged on the stack (the outer loss is taken net by net on the slices of the
stacked theta_T); :func:`batched_hypergradient` returns the mean outer loss
and the mean hypergradient over the nets, the same numbers as a Python loop over the nets up to
floating-point rounding (``tests/test_batched.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from softdistill.core.hypergrad import HyperResult, hypergradient
from softdistill.core.losses import soft_cross_entropy
from softdistill.core.synthetic import SyntheticSet
from softdistill.typing import LossFn, OuterLoss, Params

__all__ = ["StackedNets", "batched_hypergradient", "stack_params", "unstack_params"]


def stack_params(nets: Sequence[Params]) -> Params:
    """``[{name: shape}] * n_nets -> {name: (n_nets, *shape)}``."""
    if not nets:
        raise ValueError("need at least one net to stack, got none")
    keys = list(nets[0])
    for i, p in enumerate(nets):
        if list(p) != keys:
            raise ValueError(f"net {i} has weights {list(p)}, net 0 has {keys}")
    return {k: torch.stack([p[k] for p in nets]) for k in keys}


def unstack_params(stacked: Params) -> list[Params]:
    """The inverse of :func:`stack_params` (views, no copies)."""
    n = next(iter(stacked.values())).shape[0]
    return [{k: v[i] for k, v in stacked.items()} for i in range(n)]


class StackedNets(nn.Module):
    """The template ``model`` applied to a stack of weight sets at once.

    Used through :func:`softdistill.core.forward`, which calls :meth:`functional_forward`:
    stacked weights ``{name: (n_nets, *shape)}`` and inputs ``(batch, *sample_shape)`` (shared by
    every net) give logits ``(n_nets, batch, n_classes)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def functional_forward(self, params: Params, x: Tensor) -> Tensor:
        def one(p: Params) -> Tensor:
            return functional_call(self.model, p, (x,))

        return vmap(one)(params)

    def forward(self, x: Tensor) -> Tensor:
        raise TypeError("StackedNets has no weights of its own; call core.forward(stacked, ...)")


def batched_hypergradient(
    model: nn.Module,
    nets: Sequence[Params] | Params,
    syn: SyntheticSet,
    outer_loss: OuterLoss,
    *,
    method: str = "reverse",
    loss_fn: LossFn = soft_cross_entropy,
    **options,
) -> HyperResult:
    """Mean outer loss and mean hypergradient over ``nets``, all nets at once.

    Args:
        model: stateless template network (never modified).
        nets: theta_0 of each net, as a list of weight dicts or already stacked.
        syn: the synthetic set.
        outer_loss: ``theta_T -> L`` for one net (called once per net, on that net's slice of
            the stacked theta_T).
        method, loss_fn, options: as :func:`~softdistill.core.hypergradient` (``keep_every``,
            ``window``, ``n_steps``).

    Returns:
        :class:`HyperResult` with the mean loss, the mean gradients and the stacked theta_T.
    """
    stacked = dict(nets) if isinstance(nets, dict) else stack_params(nets)

    def stacked_loss(logits: Tensor, y: Tensor) -> Tensor:
        # sum over nets of each net's inner loss: its gradient is every net's own gradient
        return vmap(loss_fn, in_dims=(0, None))(logits, y).sum()

    def stacked_outer(params: Params) -> Tensor:
        # One net at a time: the outer loss sees one large real batch, where batching over nets
        # gains nothing on a CPU (measured: the loop is ~2x faster than vmap for 16 LeNets on
        # 1024 images) and any outer loss works, vmappable or not.
        n = next(iter(params.values())).shape[0]
        return sum(outer_loss({k: v[i] for k, v in params.items()}) for i in range(n)) / n

    return hypergradient(
        StackedNets(model),
        stacked,
        syn,
        stacked_outer,
        method=method,
        loss_fn=stacked_loss,
        **options,
    )
