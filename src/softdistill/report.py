"""Pictures of a run: the grid of synthetic examples with their top soft labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from softdistill.io import atomic_write

__all__ = ["denormalise", "save_synthetic_grid", "top_labels"]


def denormalise(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Undo the dataset normalisation of images ``(..., C, H, W)`` and clip to [0, 1]."""
    c = x.shape[-3]
    m = torch.tensor(list(mean) or [0.0] * c, dtype=x.dtype).view(c, 1, 1)
    s = torch.tensor(list(std) or [1.0] * c, dtype=x.dtype).view(c, 1, 1)
    return (x * s + m).clamp(0, 1)


def top_labels(y: Tensor, class_names: Sequence[str], k: int = 3) -> list[list[tuple[str, float]]]:
    """For each row of ``y (n, n_classes)``, its ``k`` largest entries as ``(name, value)``."""
    vals, idx = y.topk(min(k, y.shape[-1]), dim=-1)
    return [
        [(class_names[i], v) for i, v in zip(ii, vv)] for ii, vv in zip(idx.tolist(), vals.tolist())
    ]


def save_synthetic_grid(
    x_syn: Tensor,
    y_soft: Tensor,
    class_names: Sequence[str],
    path: str | Path,
    *,
    mean: Sequence[float] = (),
    std: Sequence[float] = (),
    top: int = 2,
    max_cols: int = 10,
) -> Path:
    """A PNG grid: one block of rows per synthetic batch, each image titled with its top labels.

    Args:
        x_syn: ``(n_batches, per_batch, C, H, W)`` images in normalised space.
        y_soft: ``(n_batches, per_batch, n_classes)`` label vectors.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = denormalise(x_syn.detach().float().cpu(), mean, std)
    y = y_soft.detach().float().cpu()
    n_batches, per_batch = x.shape[:2]
    cols = min(max_cols, per_batch)
    rows_per_batch = math.ceil(per_batch / cols)
    rows = n_batches * rows_per_batch
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.55 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for b in range(n_batches):
        labels = top_labels(y[b], class_names, top)
        for i in range(per_batch):
            ax = axes[b * rows_per_batch + i // cols, i % cols]
            img = x[b, i].permute(1, 2, 0).numpy()
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_title("\n".join(f"{n[:8]} {v:.2f}" for n, v in labels[i]), fontsize=6)
        axes[b * rows_per_batch, 0].text(
            -0.15,
            0.5,
            f"step {b}",
            transform=axes[b * rows_per_batch, 0].transAxes,
            rotation=90,
            va="center",
            ha="right",
            fontsize=7,
        )
    fig.tight_layout()

    def write(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=110)

    try:
        return atomic_write(path, write)
    finally:
        plt.close(fig)
