"""Hypergradients: d L / d (x_syn, label_params, raw_lrs) through the unrolled inner steps.

Methods behind :func:`hypergradient` (notation in :mod:`softdistill.core.unroll`, derivation and
memory figures in ``docs/hypergradient.md``):

``reverse`` (exact)
    Forward sweep without a graph, keeping weight snapshots. Then ``d = dL/dtheta_T`` and, for
    t = T-1 .. 0, rebuild step t's graph from theta_t and take the vector-Jacobian product of
    ``g_t`` with cotangent ``-d``: its parts w.r.t. x_t, y_t, eta_t are accumulated into the
    synthetic set's gradients and its part w.r.t. theta_t is added to ``d``, which becomes
    ``dL/dtheta_t``. With ``keep_every=1`` all T+1 weight vectors are kept (memory
    O(T * params + one step's activations)); with ``keep_every=k`` only every k-th one is
    kept and each segment of k steps is recomputed from its snapshot just before it is swept
    (memory O((T/k + k) * params + one step's activations), one extra forward+backward per
    step). The recomputed weights are the same floating-point numbers, so every k gives the same
    gradients.

``autograd`` (exact; the reference)
    Plain backpropagation through the whole differentiable unroll. Memory O(T * activations).

``truncated`` (approximate unless ``window >= n_steps``)
    The reverse sweep stopped after the last ``window`` steps: steps before ``n_steps - window``
    run detached, so their learning rates (and the inputs used only there) get no gradient and
    ``dL/dtheta`` is not carried through them. Memory O(window / k + k) weight vectors.

All methods take ``n_steps``: run only the first ``n_steps`` of the T inner steps and take the outer
loss at theta_{n_steps}. With ``truncated`` and a random ``n_steps`` drawn from
``[window, T]`` at every outer step this is RaT-BPTT's random truncation (see
:func:`sample_truncation`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from softdistill.core.losses import loss_and_grad, soft_cross_entropy
from softdistill.core.synthetic import SyntheticSet
from softdistill.core.unroll import forward, inner_step, random_inner_steps, unroll
from softdistill.typing import LossFn, OuterLoss, Params

__all__ = [
    "EXACT_METHODS",
    "METHODS",
    "HyperResult",
    "auto_keep_every",
    "hypergradient",
    "inner_graph_bytes",
    "sample_truncation",
]

METHODS = ("reverse", "autograd", "truncated")
EXACT_METHODS = ("reverse", "autograd")  # "truncated" is exact only when window >= n_steps


@dataclass
class HyperResult:
    """Result of one hypergradient computation.

    Attributes:
        loss: the outer loss L (detached scalar).
        grads: ``dL/dp`` for each ``p`` in ``syn.parameters()`` (in that order); ``None`` for the
            tensors that do not require grad.
        params_T: theta_T (theta_{n_steps} when truncated), the trained weights (detached).
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
    keep_every: int = 1,
    window: int | None = None,
    n_steps: int | None = None,
) -> HyperResult:
    """Gradient of the outer loss w.r.t. the synthetic set, through the inner steps.

    Args:
        model: stateless template network (never modified).
        params0: theta_0, the initial inner weights (not differentiated).
        syn: the synthetic set; its tensors with ``requires_grad`` get gradients.
        outer_loss: ``theta_T -> L``, e.g. cross-entropy on a real batch.
        method: ``reverse`` (memory-lean, exact), ``autograd`` (reference, exact) or
            ``truncated`` (only the last ``window`` steps differentiated).
        loss_fn: the inner loss.
        keep_every: ``reverse``/``truncated``: keep every k-th weight vector of the forward
            sweep and recompute the others during the reverse sweep (1 keeps all; about
            ``sqrt(T)`` minimises memory). Does not change the result.
        window: ``truncated`` only: number of differentiated steps at the end of the unroll.
        n_steps: run only inner steps ``0 .. n_steps-1`` (default all T); the outer loss is taken
            at theta_{n_steps}. Steps after it get zero gradient.

    Returns:
        :class:`HyperResult`; the caller decides how to accumulate ``grads``.
    """
    all_params = list(syn.parameters())
    leaves = [p for p in all_params if p.requires_grad]
    if not leaves:
        raise ValueError("nothing to learn: x_syn, label_params and raw_lrs are all frozen")
    if method not in METHODS:
        raise ValueError(f"unknown hypergradient method {method!r}; expected one of {METHODS}")
    T = syn.n_steps
    stop = T if n_steps is None else int(n_steps)
    if not 1 <= stop <= T:
        raise ValueError(f"n_steps must be in [1, T = {T}], got {n_steps}")
    if int(keep_every) < 1:
        raise ValueError(f"keep_every must be >= 1, got {keep_every}")
    if method != "autograd" and random_inner_steps(model):
        raise ValueError(
            f"method {method!r} recomputes inner steps, and this model's inner steps draw "
            "random numbers (dropout): the recomputed steps would differ; use 'autograd'"
        )
    if method == "truncated":
        if window is None or int(window) < 1:
            raise ValueError(f"method 'truncated' needs a window >= 1, got {window}")
        start = max(0, stop - int(window))
    elif window is not None:
        raise ValueError(f"window={window} applies to method 'truncated' only, not {method!r}")
    else:
        start = 0
    if method == "autograd":
        if keep_every != 1:
            raise ValueError(
                f"keep_every={keep_every} applies to 'reverse' and 'truncated', not "
                "'autograd' (which keeps the whole graph)"
            )
        loss, leaf_grads, params_T = _autograd(
            model, params0, syn, outer_loss, leaves, loss_fn, stop
        )
    else:
        loss, leaf_grads, params_T = _reverse(
            model, params0, syn, outer_loss, leaves, loss_fn, start, stop, int(keep_every)
        )
    by_id = {id(p): g for p, g in zip(leaves, leaf_grads)}
    return HyperResult(loss, tuple(by_id.get(id(p)) for p in all_params), params_T)


def sample_truncation(n_steps: int, window: int, generator: torch.Generator) -> int:
    """RaT-BPTT's random unroll length: uniform on ``[min(window, T), T]`` (T = ``n_steps``).

    Used with ``hypergradient(..., method="truncated", window=window, n_steps=<this>)``: a random
    number of detached steps, then ``window`` differentiated ones, and the outer loss there.
    """
    if window < 1 or n_steps < 1:
        raise ValueError(f"window and n_steps must be >= 1, got {window}, {n_steps}")
    low = min(window, n_steps)
    return low + int(torch.randint(0, n_steps - low + 1, (1,), generator=generator))


def inner_graph_bytes(
    model: nn.Module, params0: Params, syn: SyntheticSet, loss_fn: LossFn = soft_cross_entropy
) -> int:
    """Bytes the ``autograd`` method keeps for one differentiable inner step (step 0).

    Measured, not estimated: the tensors autograd saves while step 0's forward and its
    ``create_graph`` gradient are recorded (each storage counted once). The whole unroll keeps
    about ``syn.n_steps`` times this (plus the weights of every step).
    """
    seen: dict[tuple[int, int], int] = {}

    def pack(t: Tensor) -> Tensor:
        if t.layout == torch.strided and t.device.type != "meta":
            storage = t.untyped_storage()
            seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return t

    params = {k: v.detach().requires_grad_(True) for k, v in params0.items()}
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x, y, eta = syn.step(0)
        inner = loss_fn(forward(model, params, x), y)
        grads = torch.autograd.grad(inner, tuple(params.values()), create_graph=True)
        new = [p - eta * g for p, g in zip(params.values(), grads)]
    del new
    weights = sum(v.numel() * v.element_size() for v in params0.values())
    return sum(seen.values()) + weights


def auto_keep_every(n_steps: int) -> int:
    """``ceil(sqrt(n_steps))``: the ``keep_every`` that minimises T/k + k."""
    return max(1, math.ceil(math.sqrt(n_steps)))


def _zeros_if_none(grads, like):
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, like)]


def _advance(model, params, step, loss_fn) -> Params:
    """One detached inner step theta_t -> theta_t+1."""
    new, _ = inner_step(model, params, *step, loss_fn=loss_fn)
    return {k: v.detach() for k, v in new.items()}


def _reverse(model, params0, syn, outer_loss, leaves, loss_fn, start, stop, every):
    steps = syn.detached_steps()
    # Forward sweep, no graph: steps 0 .. start-1 are only run (truncation); from `start` on,
    # theta_t is kept at every `every`-th step (the segment starts).
    params = {k: v.detach() for k, v in params0.items()}
    for t in range(start):
        params = _advance(model, params, steps[t], loss_fn)
    snapshots: dict[int, Params] = {}
    for t in range(start, stop):
        if (t - start) % every == 0:
            snapshots[t] = params
        params = _advance(model, params, steps[t], loss_fn)
    theta_T = {k: v.requires_grad_(True) for k, v in params.items()}
    loss, d = loss_and_grad(outer_loss, theta_T)  # dL/dtheta_stop
    d = list(d)
    acc = [torch.zeros_like(p) for p in leaves]
    n = len(d)
    for seg in sorted(snapshots, reverse=True):
        # Recompute theta_seg .. theta_end-1 from the segment's snapshot (nothing when every=1).
        traj = [snapshots.pop(seg)]
        end = min(seg + every, stop)
        for t in range(seg, end - 1):
            traj.append(_advance(model, traj[-1], steps[t], loss_fn))
        for t in reversed(range(seg, end)):
            params_t = {k: v.detach().requires_grad_(True) for k, v in traj.pop().items()}
            with torch.enable_grad():
                x_t, y_t, eta_t = syn.step(t)  # graph back to the leaves
                inner = loss_fn(forward(model, params_t, x_t), y_t)
                grad_l = torch.autograd.grad(inner, tuple(params_t.values()), create_graph=True)
                # VJP of g_t = eta_t * grad_l with cotangent -d, as the gradient of one scalar:
                # d/d(theta_t, x_t, y_t, eta_t) of  -eta_t * <grad_l, d>.
                s = -eta_t * sum((gk * dk).sum() for gk, dk in zip(grad_l, d))
                vjp = torch.autograd.grad(s, (*params_t.values(), *leaves), allow_unused=True)
            # dL/dtheta_t = dL/dtheta_t+1 (identity part of theta_t+1 = theta_t - g_t) + VJP part.
            d = [dk + vk for dk, vk in zip(d, _zeros_if_none(vjp[:n], d))]
            for a, v in zip(acc, vjp[n:]):
                if v is not None:
                    a.add_(v)
    return loss.detach(), acc, {k: v.detach() for k, v in theta_T.items()}


def _autograd(model, params0, syn, outer_loss, leaves, loss_fn, stop):
    with torch.enable_grad():
        params0 = {k: v.detach().requires_grad_(True) for k, v in params0.items()}
        steps = [syn.step(t) for t in range(stop)]
        traj = unroll(model, params0, steps, loss_fn=loss_fn, create_graph=True)
        # dL/dtheta_T at a detached copy (so a chunked outer loss frees each chunk's graph),
        # then one backward through the kept unroll: the chain rule, split at theta_T
        theta_T = {k: v.detach().requires_grad_(True) for k, v in traj[-1].items()}
        loss, d = loss_and_grad(outer_loss, theta_T)
        grads = torch.autograd.grad(
            tuple(traj[-1].values()), leaves, grad_outputs=tuple(d), allow_unused=True
        )
    grads = _zeros_if_none(grads, leaves)
    return loss, grads, {k: v.detach() for k, v in traj[-1].items()}
