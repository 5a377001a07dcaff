"""How the nets of a pool are trained: :class:`TrainConfig` (``softdistill train``).

Kept apart from :mod:`softdistill.pool` so that building the command line imports no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from softdistill.config import coerce_value
from softdistill.errors import ConfigError
from softdistill.original import canonical_names
from softdistill.utils import did_you_mean

__all__ = ["SPLITS", "TrainConfig"]

SPLITS = ("train", "test")


@dataclass
class TrainConfig:
    """How the nets of a pool are trained (``softdistill train``; saved in the manifest).

    Defaults are the original recipe for MNIST with LeNet (40 epochs, lr 2e-4, decay at 20).
    """

    dataset: str = "mnist"  # registry name of the dataset the nets are trained on
    data_dir: str | None = None  # folder with dataset files (default: $SOFTDISTILL_DATA)
    maxlen: int | None = None  # text datasets: tokens per text; default per dataset
    ntoken: int = 5000  # text datasets: vocabulary size (most frequent training words)
    embeddings: str = "auto"  # text datasets: the frozen table (see distill --help)
    arch: str = "lenet"
    arch_args: dict[str, Any] = field(default_factory=dict)
    init: str = "xavier"  # weight init of each net before training (see models.INITS)
    init_param: float = 1.0
    n_nets: int = 10  # nets in the pool
    split: str = "train"  # train (nets to distill on) or test (held-out nets); seeds differ
    epochs: int = 40  # passes over the training split
    batch_size: int = 1024
    lr: float = 2e-4  # Adam learning rate (betas 0.5, 0.999, as the original)
    decay_every: int = 20  # multiply lr by decay_factor every this many epochs
    decay_factor: float = 0.5
    seed: int = 0  # base seed; net i of the pool uses net_seed(seed, split, i)
    device: str = "auto"
    parallel: int = 1  # nets trained at once (torch.func.vmap over stacked weights): the same
    #                    training as one at a time, much faster on a GPU for small nets

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # the typed rules of Config
            setattr(self, f.name, coerce_value(f.name, getattr(self, f.name), str(f.type), "flags"))
        self.dataset, self.arch, self.arch_args = canonical_names(
            self.dataset, self.arch, self.arch_args
        )

    def validate(self) -> TrainConfig:
        from softdistill.data import DATASETS
        from softdistill.models import ARCHS, INITS

        for key, value, options in (
            ("dataset", self.dataset, DATASETS),
            ("arch", self.arch, ARCHS),
            ("init", self.init, INITS),
            ("split", self.split, SPLITS),
        ):
            if value not in options:
                raise ConfigError(
                    f"unknown {key} {value!r}{did_you_mean(value, options)}; "
                    f"expected one of {sorted(options)}"
                )
        for key in ("n_nets", "epochs", "batch_size", "decay_every", "parallel"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be a positive integer, got {getattr(self, key)}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not 0 < self.decay_factor <= 1:
            raise ConfigError(f"decay_factor must be in (0, 1], got {self.decay_factor}")
        from softdistill.seeds import check_seed

        try:
            check_seed(self.seed)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
