"""Losses and the label-parameter -> label-vector map."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from softdistill.typing import Params

__all__ = ["LABEL_MODES", "ChunkedLoss", "loss_and_grad", "soft_cross_entropy", "label_vector"]

LABEL_MODES = ("raw", "softmax")


def soft_cross_entropy(logits: Tensor, y_soft: Tensor) -> Tensor:
    """Cross-entropy against a label vector, averaged over the batch.

    ``-(y_soft * log_softmax(logits)).sum(-1).mean()``. With one-hot ``y_soft`` this is the usual
    cross-entropy; with ``raw`` soft labels (any real vector, as the soft-label paper) it is the
    same bilinear form, which may be negative.

    Args:
        logits: ``(batch, n_classes)``.
        y_soft: ``(batch, n_classes)``.
    """
    return -(y_soft * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def label_vector(label_params: Tensor, mode: str) -> Tensor:
    """Map label parameters to the label vectors used in the inner loss.

    ``raw`` uses the parameters as they are (the soft-label paper); ``softmax`` keeps every label
    a probability vector.
    """
    if mode == "raw":
        return label_params
    if mode == "softmax":
        return torch.softmax(label_params, dim=-1)
    raise ValueError(f"unknown label mode {mode!r}; expected one of {LABEL_MODES}")


class ChunkedLoss:
    """An outer loss that is a mean over ``n`` examples, taken ``chunk`` examples at a time.

    ``chunk_sum(params, start, stop)`` is the loss summed over examples ``start .. stop-1``.
    Called, it is the mean over all ``n`` (differentiable, like any outer loss);
    :meth:`value_and_grad` gives the mean and its gradient w.r.t. ``params`` chunk by chunk, so
    only one chunk's activations are alive at a time (on a CPU small chunks also run faster: the
    activations stay in cache). Equal to the whole-batch gradient up to summation order.
    """

    def __init__(self, chunk_sum: Callable[[Params, int, int], Tensor], n: int, chunk: int) -> None:
        if n < 1 or chunk < 1:
            raise ValueError(f"n and chunk must be >= 1, got {n}, {chunk}")
        self.chunk_sum, self.n, self.chunk = chunk_sum, n, chunk

    def _spans(self):
        return [(i, min(i + self.chunk, self.n)) for i in range(0, self.n, self.chunk)]

    def __call__(self, params: Params) -> Tensor:
        return sum(self.chunk_sum(params, a, b) for a, b in self._spans()) / self.n

    def value_and_grad(self, params: Params) -> tuple[Tensor, list[Tensor]]:
        leaves = tuple(params.values())
        total, grads = None, None
        for a, b in self._spans():
            with torch.enable_grad():
                part = self.chunk_sum(params, a, b) / self.n
                g = torch.autograd.grad(part, leaves)
            total = part.detach() if total is None else total + part.detach()
            grads = list(g) if grads is None else [x.add_(y) for x, y in zip(grads, g)]
        return total, grads


def loss_and_grad(
    outer_loss: Callable[[Params], Tensor], params: Params
) -> tuple[Tensor, Sequence[Tensor]]:
    """``L(params)`` (detached) and ``dL/dparams`` (``params`` require grad); chunk by chunk for
    a :class:`ChunkedLoss`."""
    if isinstance(outer_loss, ChunkedLoss):
        return outer_loss.value_and_grad(params)
    with torch.enable_grad():
        loss = outer_loss(params)
        grads = torch.autograd.grad(loss, tuple(params.values()))
    return loss.detach(), grads
