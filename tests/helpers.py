"""Tiny models and data made by the tests themselves."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from softdistill.data import Dataset, Split


class TinyNet(nn.Module):
    """conv(2, 3x3) - tanh - linear: smooth, so finite differences are well behaved."""

    def __init__(self, in_channels: int = 1, size: int = 4, n_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2, 3, padding=1)
        self.fc = nn.Linear(2 * size * size, n_classes)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def blobs(n_classes: int = 3, n_per_class: int = 40, size: int = 8, seed: int = 0) -> Dataset:
    """Gaussian class blobs as (1, size, size) images: learnable, made on the fly."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(n_classes, 1, size, size, generator=g)

    def split(n):
        y = torch.arange(n_classes).repeat_interleave(n)
        x = centers[y] + 0.8 * torch.randn(len(y), 1, size, size, generator=g)
        return Split(x, y)

    return Dataset(
        "blobs",
        split(n_per_class),
        split(n_per_class // 2),
        [f"c{i}" for i in range(n_classes)],
        mean=(0.0,),
        std=(1.0,),
    )


def make_pool(path, data: Dataset, arch_args=None, n_nets: int = 3, split: str = "train", **kw):
    """A pool of small MLPs on ``data`` trained for a few fast epochs (``softdistill train``'s
    library path), returning its manifest."""
    from softdistill.models import build
    from softdistill.pool import TrainConfig, train_pool, write_manifest

    arch_args = arch_args if arch_args is not None else {"hidden": [16]}
    cfg = TrainConfig(
        dataset="digits",
        arch="mlp",
        arch_args=arch_args,
        n_nets=n_nets,
        split=split,
        **{"epochs": 3, "batch_size": 32, "lr": 1e-2, **kw},
    ).validate()
    model = build("mlp", data.sample_shape, data.n_classes, **arch_args)
    train_pool(cfg, data, model, path)
    return write_manifest(cfg, data, path)


def benchmark_module(name: str):
    """The script ``benchmarks/<name>.py`` imported as a module (benchmarks are not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    if str(path.parent) not in sys.path:  # as when run as a script: bench_common beside it
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
