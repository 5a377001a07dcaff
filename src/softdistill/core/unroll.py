r"""The inner training loop, written once for distillation and for evaluation replay.

Notation (used throughout ``softdistill.core``; ``docs/hypergradient.md`` derives the backward)::

    theta_0                      initial weights of the inner network (fixed, random, or loaded)
    (x_t, y_t, eta_t)            the t-th inner step: a batch of synthetic inputs, their soft
                                 labels, and its learning rate eta_t = softplus(raw_lr_t);
                                 t = 0 .. T-1
                                 T = n_batches * n_epochs (the batches are replayed n_epochs times)
    l(f(x; theta), y)            the inner loss: cross-entropy against the label vector y
    g_t       = eta_t * grad_theta l(f(x_t; theta_t), y_t)
    theta_t+1 = theta_t - g_t
    L         = outer loss of f(x_real; theta_T) on a real batch (basic, attack, adapt)

A trajectory is the list ``[theta_0, ..., theta_T]``: it has T+1 entries while there are only T
steps (and T step updates ``g_t``), because theta_T is produced by the last step and is only ever
used by the outer loss L.

Weights are plain ``dict[str, Tensor]`` (:data:`softdistill.typing.Params`) applied with
:func:`torch.func.functional_call`; the ``nn.Module`` passed in is a stateless template and is never
modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.func import functional_call

from softdistill.core.losses import soft_cross_entropy
from softdistill.typing import LossFn, Params, Step

__all__ = ["inner_pass", "inner_step", "random_inner_steps", "unroll", "forward"]


def forward(model: nn.Module, params: Params, x: Tensor) -> Tensor:
    """``f(x; params)``: apply ``model`` with the weights ``params``.

    A model that defines ``functional_forward(params, x)`` is applied with it instead (e.g.
    :class:`~softdistill.core.batched.StackedNets`, many weight sets at once).
    """
    custom = getattr(model, "functional_forward", None)
    if custom is not None:
        return custom(params, x)
    return functional_call(model, params, (x,))


@contextmanager
def inner_pass(model: nn.Module) -> Iterator[None]:
    """Mark the passes of an inner step, for a model that acts otherwise there.

    A model with an ``inner_pass`` attribute (e.g. :class:`~softdistill.models.TextConvNet` with
    ``dropout``: the text paper's nets train in train mode) sees it True inside; others are
    untouched.
    """
    if not hasattr(model, "inner_pass"):
        yield
        return
    before = model.inner_pass
    model.inner_pass = True
    try:
        yield
    finally:
        model.inner_pass = before


def random_inner_steps(model: nn.Module) -> bool:
    """Whether ``model``'s inner steps draw random numbers (dropout masks): then the same step
    computed twice differs, and only a hypergradient that keeps the one graph is exact."""
    return hasattr(model, "inner_pass") and float(getattr(model, "dropout", 0.0)) > 0


def inner_step(
    model: nn.Module,
    params: Params,
    x: Tensor,
    y: Tensor,
    lr: Tensor | float,
    *,
    loss_fn: LossFn = soft_cross_entropy,
    create_graph: bool = False,
) -> tuple[Params, Params]:
    """One inner SGD step: ``theta_t+1 = theta_t - g_t``, ``g_t = eta_t * grad l``.

    Args:
        model: stateless template network.
        params: theta_t.
        x: ``(per_batch, *sample_shape)`` inputs x_t.
        y: ``(per_batch, n_classes)`` label vectors y_t.
        lr: eta_t (a scalar tensor or float).
        loss_fn: inner loss ``(logits, y) -> scalar``.
        create_graph: keep the graph of the step so theta_t+1 is differentiable w.r.t. theta_t,
            x_t, y_t and eta_t (distillation). When False every input is detached first
            (evaluation replay, forward sweep of the reverse method).

    Returns:
        ``(theta_t+1, g_t)``.
    """
    if not create_graph:
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        x, y = x.detach(), y.detach()
        lr = lr.detach() if isinstance(lr, Tensor) else lr
    with torch.enable_grad(), inner_pass(model):
        loss = loss_fn(forward(model, params, x), y)
        grads = torch.autograd.grad(loss, tuple(params.values()), create_graph=create_graph)
    with torch.set_grad_enabled(create_graph):
        g = {k: lr * gk for k, gk in zip(params, grads)}
        new = {k: params[k] - g[k] for k in params}
    return new, g


def unroll(
    model: nn.Module,
    params0: Params,
    steps: Iterable[Step],
    *,
    loss_fn: LossFn = soft_cross_entropy,
    create_graph: bool = False,
) -> list[Params]:
    """Run the inner steps from theta_0 and return the trajectory ``[theta_0, ..., theta_T]``.

    With ``create_graph=False`` (evaluation replay) every step is detached and the result equals
    ``torch.optim.SGD`` with the per-step learning rates. With ``create_graph=True`` the whole
    trajectory stays differentiable (the ``autograd`` hypergradient).
    """
    if not create_graph:
        params0 = {k: v.detach() for k, v in params0.items()}
    traj = [params0]
    for x, y, lr in steps:
        params, _ = inner_step(
            model, traj[-1], x, y, lr, loss_fn=loss_fn, create_graph=create_graph
        )
        traj.append(params if create_graph else {k: v.detach() for k, v in params.items()})
    return traj
