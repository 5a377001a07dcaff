"""Hypergradients: d L / d (x_syn, label_params, raw_lrs) through the unrolled inner steps.

Two exact methods behind :func:`hypergradient` (notation in :mod:`softdistill.core.unroll`,
derivation in ``docs/hypergradient.md``):

``reverse``
    Forward sweep without a graph, keeping only the T+1 weight snapshots theta_0..theta_T.
    Then ``d = dL/dtheta_T`` and, for t = T-1 .. 0, rebuild step t's graph from theta_t and take
    the vector-Jacobian product of ``g_t`` with cotangent ``-d``: its parts w.r.t. x_t, y_t, eta_t
    are accumulated into the synthetic set's gradients and its part w.r.t. theta_t is added to
    ``d``, which becomes ``dL/dtheta_t``. Memory: O(T * params + one step's activations).

``autograd``
    Plain backpropagation through the whole differentiable unroll (the reference).
    Memory: O(T * activations).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from softdistill.core.losses import soft_cross_entropy
from softdistill.core.synthetic import SyntheticSet
from softdistill.core.unroll import forward, unroll
from softdistill.typing import LossFn, OuterLoss, Params

__all__ = ["METHODS", "HyperResult", "hypergradient"]

METHODS = ("reverse", "autograd")


@dataclass
class HyperResult:
    """Result of one hypergradient computation.

    Attributes:
        loss: the outer loss L (detached scalar).
        grads: ``dL/dp`` for each ``p`` in ``syn.parameters()`` (in that order); ``None`` for the
            tensors that do not require grad.
        params_T: theta_T, the trained weights (detached).
    """

    loss: Tensor
    grads: tuple[Tensor | None, ...]
    params_T: Params


def hypergradient(
    model: nn.Module,
    params0: Params,
    syn: SyntheticSet,
    outer_loss: OuterLoss,
    *,
    method: str = "reverse",
    loss_fn: LossFn = soft_cross_entropy,
) -> HyperResult:
    """Gradient of the outer loss w.r.t. the synthetic set, through the T inner steps.

    Args:
        model: stateless template network (never modified).
        params0: theta_0, the initial inner weights (not differentiated).
        syn: the synthetic set; its tensors with ``requires_grad`` get gradients.
        outer_loss: ``theta_T -> L``, e.g. cross-entropy on a real batch.
        method: ``reverse`` (memory-lean, exact) or ``autograd`` (reference, exact).
        loss_fn: the inner loss.

    Returns:
        :class:`HyperResult`; the caller decides how to accumulate ``grads``.
    """
    all_params = list(syn.parameters())
    leaves = [p for p in all_params if p.requires_grad]
    if not leaves:
        raise ValueError("nothing to learn: x_syn, label_params and raw_lrs are all frozen")
    if method == "reverse":
        loss, leaf_grads, params_T = _reverse(model, params0, syn, outer_loss, leaves, loss_fn)
    elif method == "autograd":
        loss, leaf_grads, params_T = _autograd(model, params0, syn, outer_loss, leaves, loss_fn)
    else:
        raise ValueError(f"unknown hypergradient method {method!r}; expected one of {METHODS}")
    by_id = {id(p): g for p, g in zip(leaves, leaf_grads)}
    return HyperResult(loss, tuple(by_id.get(id(p)) for p in all_params), params_T)


def _zeros_if_none(grads, like):
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, like)]


def _reverse(model, params0, syn, outer_loss, leaves, loss_fn):
    # Forward sweep: theta_0 .. theta_T, no graph kept.
    traj = unroll(model, params0, syn.detached_steps(), loss_fn=loss_fn)
    theta_T = {k: v.detach().requires_grad_(True) for k, v in traj[-1].items()}
    with torch.enable_grad():
        loss = outer_loss(theta_T)
        d = list(torch.autograd.grad(loss, tuple(theta_T.values())))  # dL/dtheta_T
    acc = [torch.zeros_like(p) for p in leaves]
    for t in reversed(range(syn.n_steps)):
        params_t = {k: v.detach().requires_grad_(True) for k, v in traj[t].items()}
        with torch.enable_grad():
            x_t, y_t, eta_t = syn.step(t)  # graph back to the leaves
            inner = loss_fn(forward(model, params_t, x_t), y_t)
            grad_l = torch.autograd.grad(inner, tuple(params_t.values()), create_graph=True)
            # VJP of g_t = eta_t * grad_l with cotangent -d, as the gradient of one scalar:
            # d/d(theta_t, x_t, y_t, eta_t) of  -eta_t * <grad_l, d>.
            s = -eta_t * sum((gk * dk).sum() for gk, dk in zip(grad_l, d))
            vjp = torch.autograd.grad(s, (*params_t.values(), *leaves), allow_unused=True)
        n = len(d)
        # dL/dtheta_t = dL/dtheta_t+1 (identity part of theta_t+1 = theta_t - g_t) + VJP part.
        d = [dk + vk for dk, vk in zip(d, _zeros_if_none(vjp[:n], d))]
        for a, v in zip(acc, vjp[n:]):
            if v is not None:
                a.add_(v)
    return loss.detach(), acc, {k: v.detach() for k, v in theta_T.items()}


def _autograd(model, params0, syn, outer_loss, leaves, loss_fn):
    with torch.enable_grad():
        params0 = {k: v.detach().requires_grad_(True) for k, v in params0.items()}
        traj = unroll(model, params0, syn.steps(), loss_fn=loss_fn, create_graph=True)
        loss = outer_loss(traj[-1])
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    grads = _zeros_if_none(grads, leaves)
    return loss.detach(), grads, {k: v.detach() for k, v in traj[-1].items()}
