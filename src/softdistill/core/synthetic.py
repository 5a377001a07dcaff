"""The learnable synthetic set: inputs, label parameters and per-step learning rates."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softdistill.core.losses import LABEL_MODES, label_vector
from softdistill.typing import Step

__all__ = [
    "LABEL_INITS",
    "SyntheticSet",
    "batch_of_step",
    "init_label_params",
    "inverse_softplus",
    "layout_steps",
]


def batch_of_step(t: int | Tensor, n_batches: int) -> int | Tensor:
    """The batch that inner step ``t`` trains on: the batches in order, one pass per epoch
    (``T = n_batches * n_epochs``); ``t`` may be a tensor of steps."""
    return t % n_batches


def layout_steps(xs: Sequence[Tensor], ys: Sequence[Tensor], lrs: Tensor) -> list[Step]:
    """The ``len(lrs)`` steps of the batches ``(xs[b], ys[b])``: step t trains on batch
    :func:`batch_of_step` ``(t)`` with learning rate ``lrs[t]``."""
    n = len(xs)
    return [(xs[batch_of_step(t, n)], ys[batch_of_step(t, n)], lrs[t]) for t in range(len(lrs))]


LABEL_INITS = ("onehot", "smoothed", "stdnormal", "uniform", "bin", "zeros", "ones", "orthogonal")
SMOOTHING = 0.1  # mass spread over the other classes by the ``smoothed`` label init


def inverse_softplus(y: float | Tensor) -> Tensor:
    """``x`` with ``softplus(x) == y`` for ``y > 0`` (numerically stable form)."""
    y = torch.as_tensor(y, dtype=torch.get_default_dtype()) if not isinstance(y, Tensor) else y
    if (y <= 0).any():
        raise ValueError(f"learning rates must be positive, got {y.tolist()}")
    return y + torch.log(-torch.expm1(-y))


def init_label_params(
    kind: str,
    classes: Tensor,
    n_classes: int,
    n_batches: int,
    *,
    mode: str = "raw",
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Initial label parameters ``(n_batches, per_batch, n_classes)``.

    Args:
        kind: one of :data:`LABEL_INITS`.
        classes: ``(per_batch,)`` the class each synthetic example starts as.
        n_classes: length of every label vector (all classes of the task, even when the synthetic
            set has fewer examples than classes).
        n_batches: number of synthetic batches; random inits differ per batch.
        mode: ``raw`` or ``softmax``. For ``softmax``, the probability-like inits (``onehot``,
            ``smoothed``) are turned into logits ``log(max(p, 1e-4))`` so the initial label vector
            is (close to) that probability vector; the others are used as logits directly.
    """
    dtype = dtype or torch.get_default_dtype()
    shape = (n_batches, classes.numel(), n_classes)
    onehot = F.one_hot(classes.long(), n_classes).to(dtype).expand(shape)
    if kind == "onehot":
        out = onehot.clone()
    elif kind == "smoothed":
        out = onehot * (1 - SMOOTHING) + SMOOTHING / n_classes
    elif kind == "stdnormal":
        out = torch.randn(shape, generator=generator, dtype=dtype)
    elif kind == "uniform":
        out = torch.rand(shape, generator=generator, dtype=dtype)
    elif kind == "bin":
        out = torch.randint(0, 2, shape, generator=generator).to(dtype)
    elif kind == "zeros":
        out = torch.zeros(shape, dtype=dtype)
    elif kind == "ones":
        out = torch.ones(shape, dtype=dtype)
    elif kind == "orthogonal":
        out = torch.empty(shape, dtype=dtype)
        for b in range(n_batches):
            nn.init.orthogonal_(out[b], generator=generator)
    else:
        raise ValueError(f"unknown label init {kind!r}; expected one of {LABEL_INITS} or file:PATH")
    if mode == "softmax" and kind in ("onehot", "smoothed"):
        out = out.clamp_min(1e-4).log()
    return out


class SyntheticSet(nn.Module):
    """``x_syn``, label parameters and ``raw_lrs``; the thing dataset distillation learns.

    Attributes:
        x_syn: ``(n_batches, per_batch, *sample_shape)`` synthetic inputs.
        label_params: ``(n_batches, per_batch, n_classes)``; the label vectors are
            ``label_vector(label_params, label_mode)``.
        raw_lrs: ``(T,)`` with ``T = n_batches * n_epochs``; step t uses ``softplus(raw_lrs[t])``.
        classes: ``(per_batch,)`` buffer, the class each example was initialised as.

    Which tensors are learned is decided only by ``requires_grad`` (see :meth:`create`).
    """

    def __init__(
        self,
        x_syn: Tensor,
        label_params: Tensor,
        raw_lrs: Tensor,
        classes: Tensor,
        *,
        n_epochs: int,
        label_mode: str = "raw",
    ) -> None:
        super().__init__()
        if label_mode not in LABEL_MODES:
            raise ValueError(f"unknown label mode {label_mode!r}; expected one of {LABEL_MODES}")
        n_batches, per_batch = x_syn.shape[:2]
        if label_params.shape[:2] != (n_batches, per_batch):
            raise ValueError(
                f"label_params shape {tuple(label_params.shape)} does not match x_syn "
                f"{tuple(x_syn.shape)} in (n_batches, per_batch)"
            )
        if raw_lrs.shape != (n_batches * n_epochs,):
            raise ValueError(
                f"raw_lrs must have shape (n_batches * n_epochs,) = ({n_batches * n_epochs},), "
                f"got {tuple(raw_lrs.shape)}"
            )
        self.x_syn = nn.Parameter(x_syn)
        self.label_params = nn.Parameter(label_params)
        self.raw_lrs = nn.Parameter(raw_lrs)
        self.register_buffer("classes", classes.long())
        self.n_epochs = n_epochs
        self.label_mode = label_mode

    @classmethod
    def create(
        cls,
        sample_shape: Sequence[int],
        n_classes: int,
        *,
        per_class: int = 1,
        n_batches: int = 1,
        n_epochs: int = 1,
        init_lr: float = 0.02,
        label_classes: Sequence[int] | None = None,
        label_init: str | Tensor = "onehot",
        label_mode: str = "raw",
        learn_labels: bool = True,
        learn_lrs: bool = True,
        freeze_data: bool = False,
        x_init: Tensor | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> SyntheticSet:
        """A fresh synthetic set.

        Args:
            sample_shape: shape of one example, e.g. ``(1, 28, 28)`` or ``(maxlen, dim)``.
            n_classes: length of the label vectors.
            per_class: examples per label class per batch.
            n_batches: synthetic batches (one inner step each, per epoch).
            n_epochs: passes over the batches; ``T = n_batches * n_epochs``.
            init_lr: initial value of every ``lrs[t]``.
            label_classes: the classes the examples of a batch start as (``per_class`` each);
                default ``range(n_classes)``. Fewer than ``n_classes`` gives fewer synthetic
                examples than classes (the soft-label method's ``init_labels``).
            label_init: a name from :data:`LABEL_INITS`, or a tensor of label parameters
                ``(per_batch, n_classes)`` or ``(n_batches, per_batch, n_classes)``.
            label_mode: ``raw`` or ``softmax``.
            learn_labels, learn_lrs: learn those tensors (else they stay at their init).
            freeze_data: keep ``x_syn`` at its init (learn labels and lrs only).
            x_init: initial ``x_syn`` ``(n_batches, per_batch, *sample_shape)``; default N(0, 1)
                (inputs live in normalised space).
            generator: RNG for the random parts.
            dtype: floating dtype of every tensor.
        """
        if min(per_class, n_batches, n_epochs) < 1:
            raise ValueError(
                f"per_class, n_batches and n_epochs must be >= 1, got "
                f"{per_class}, {n_batches}, {n_epochs}"
            )
        dtype = dtype or torch.get_default_dtype()
        label_classes = list(range(n_classes)) if label_classes is None else list(label_classes)
        bad = [c for c in label_classes if not 0 <= c < n_classes]
        if bad:
            raise ValueError(f"label classes {bad} out of range [0, {n_classes})")
        classes = torch.tensor(label_classes, dtype=torch.long).repeat_interleave(per_class)
        per_batch = classes.numel()
        shape = (n_batches, per_batch, *sample_shape)
        if x_init is None:
            x = torch.randn(shape, generator=generator, dtype=dtype)
        else:
            if tuple(x_init.shape) != shape:
                raise ValueError(f"x_init has shape {tuple(x_init.shape)}, expected {shape}")
            x = x_init.detach().to(dtype).clone()
        if isinstance(label_init, Tensor):
            labels = label_init.detach().to(dtype)
            if labels.dim() == 2:
                labels = labels.expand(n_batches, *labels.shape)
            if tuple(labels.shape) != (n_batches, per_batch, n_classes):
                raise ValueError(
                    f"label init has shape {tuple(label_init.shape)}, expected "
                    f"({per_batch}, {n_classes}) or ({n_batches}, {per_batch}, {n_classes})"
                )
            labels = labels.clone()
        else:
            labels = init_label_params(
                label_init,
                classes,
                n_classes,
                n_batches,
                mode=label_mode,
                generator=generator,
                dtype=dtype,
            )
        raw = inverse_softplus(torch.tensor(float(init_lr), dtype=dtype)).repeat(
            n_batches * n_epochs
        )
        syn = cls(x, labels, raw, classes, n_epochs=n_epochs, label_mode=label_mode)
        syn.x_syn.requires_grad_(not freeze_data)
        syn.label_params.requires_grad_(learn_labels)
        syn.raw_lrs.requires_grad_(learn_lrs)
        return syn

    # ----------------------------------------------------------------- derived quantities
    @property
    def n_batches(self) -> int:
        return self.x_syn.shape[0]

    @property
    def per_batch(self) -> int:
        return self.x_syn.shape[1]

    @property
    def n_steps(self) -> int:
        """T, the number of inner steps."""
        return self.raw_lrs.shape[0]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x_syn.shape[2:])

    @property
    def n_classes(self) -> int:
        return self.label_params.shape[-1]

    @property
    def lrs(self) -> Tensor:
        """``(T,)`` learning rates ``softplus(raw_lrs)``, always positive."""
        return F.softplus(self.raw_lrs)

    @property
    def y_soft(self) -> Tensor:
        """``(n_batches, per_batch, n_classes)`` label vectors."""
        return label_vector(self.label_params, self.label_mode)

    def step(self, t: int) -> Step:
        """``(x_t, y_t, eta_t)``, differentiable w.r.t. the set's parameters."""
        if not 0 <= t < self.n_steps:
            raise IndexError(f"step {t} out of range for T = {self.n_steps}")
        b = batch_of_step(t, self.n_batches)
        return (
            self.x_syn[b],
            label_vector(self.label_params[b], self.label_mode),
            F.softplus(self.raw_lrs[t]),
        )

    def steps(self) -> list[Step]:
        """All T steps in order (batch :func:`batch_of_step` ``(t)`` at step t)."""
        return [self.step(t) for t in range(self.n_steps)]

    def detached_steps(self) -> list[Step]:
        """All T steps, detached (for evaluation replay)."""
        with torch.no_grad():
            return [tuple(v.detach() for v in self.step(t)) for t in range(self.n_steps)]

    def extra_repr(self) -> str:
        return (
            f"n_batches={self.n_batches}, per_batch={self.per_batch}, n_epochs={self.n_epochs}, "
            f"sample_shape={self.sample_shape}, n_classes={self.n_classes}, "
            f"label_mode={self.label_mode!r}"
        )
