"""The data types and the dataset registry: ``Split``, ``Dataset``, ``Pixels``, ``register``,
``load``. The loaders (``images``, ``folder``, ``text``) import this module and register
themselves; ``softdistill.data`` re-exports it and imports them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from softdistill.utils import did_you_mean

__all__ = [
    "DATASETS",
    "INFO",
    "MODALITIES",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "Pixels",
    "Split",
    "cache_dir",
    "load",
    "load_config",
    "locate",
    "register",
    "resolve_data_dir",
    "subset",
]


class DataError(RuntimeError):
    """A dataset is missing, malformed, or cannot be read; the message says what was expected."""


@dataclass
class Split:
    """Inputs and integer labels of one split.

    Attributes:
        x: ``(N, *sample_shape)`` float inputs, normalised. For large text datasets this may be
            a :class:`softdistill.data.text.EmbeddedTokens` (token ids embedded on indexing),
            which supports ``len``, ``shape``, ``dtype``, ``device``, ``to`` and first-axis
            indexing (returning ordinary tensors).
        y: ``(N,)`` int64 class indices.
    """

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} rows but y has {self.y.shape[0]}")

    def __len__(self) -> int:
        return self.y.shape[0]

    def to(self, device=None, dtype=None) -> Split:
        return Split(self.x.to(device=device, dtype=dtype), self.y.to(device=device))

    def sample(self, n: int, generator: torch.Generator) -> Split:
        """``n`` random examples (all of the split if it is smaller)."""
        if n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=generator)[:n].to(self.y.device)
        return self.take(idx)

    def take(self, idx: Tensor) -> Split:
        """The examples ``idx`` (lazy inputs stay lazy: :func:`subset`)."""
        return Split(subset(self.x, idx), self.y[idx])


class Pixels:
    """8-bit images ``(N, C, H, W)`` that read as normalised floats ``(x / 255 - mean) / std``.

    Image splits are kept as their uint8 pixels (a quarter of the float32 memory: MNIST's
    training split is 47 MB instead of 188 MB) and normalised when rows are read. Supports what
    the outer loop and evaluation do with ``Split.x`` (as
    :class:`softdistill.data.text.EmbeddedTokens`): ``len``, ``shape``, ``dtype``, ``device``,
    ``dim()``, ``to(device, dtype)`` and indexing the first axis (an index tensor, a boolean
    mask, a slice or an int), which returns an ordinary tensor. The values are bitwise those of
    normalising the whole split at once in float32 (then cast to ``dtype``).
    """

    def __init__(
        self,
        raw: Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        dtype: torch.dtype = torch.float32,
        rows: Tensor | None = None,
    ) -> None:
        if raw.dtype != torch.uint8 or raw.dim() != 4:
            raise ValueError(f"Pixels needs uint8 (N, C, H, W), got {raw.dtype} {tuple(raw.shape)}")
        self.rows = rows  # a subset: these rows of raw (an index, no copy of the pixels)
        c = raw.shape[1]
        m = torch.tensor(mean, dtype=torch.float32)
        s = torch.tensor(std, dtype=torch.float32)
        if m.numel() not in (1, c) or s.numel() != m.numel():
            raise ValueError(f"normalisation has {m.numel()} channels, images have {c}")
        self.raw, self.mean, self.std, self._dtype = raw, tuple(mean), tuple(std), dtype
        # (x - 255 mean) / (255 std) == (x / 255 - mean) / std, as the whole-split conversion did
        self._m = (m.view(-1, 1, 1) * 255.0).to(raw.device)
        self._s = (s.view(-1, 1, 1) * 255.0).to(raw.device)

    @property
    def shape(self) -> torch.Size:
        if self.rows is None:
            return self.raw.shape
        return torch.Size((len(self.rows), *self.raw.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self.raw.device

    def dim(self) -> int:
        return 4

    def size(self, d: int | None = None):
        return self.shape if d is None else self.shape[d]

    def __len__(self) -> int:
        return self.shape[0]

    def _index(self, idx):
        if isinstance(idx, Tensor):
            idx = idx.to(self.raw.device)
        if self.rows is None:
            return idx
        if isinstance(idx, int):
            idx = range(len(self))[idx]  # negative and out-of-range ints as a tensor's
        return self.rows[idx]

    def __getitem__(self, idx) -> Tensor:
        if isinstance(idx, tuple):  # rows first, then the other axes of those rows
            rows = self[idx[0]]
            rest = idx[1:] if isinstance(idx[0], int) else (slice(None), *idx[1:])
            return rows[rest]
        x = self.raw[self._index(idx)].to(torch.float32).sub_(self._m).div_(self._s)
        return x if self._dtype == torch.float32 else x.to(self._dtype)

    def subset(self, idx) -> Pixels:
        """The rows ``idx``: an index into the same 8-bit pixels (no copy)."""
        rows = self._index(idx)
        if isinstance(rows, slice) or not isinstance(rows, Tensor):
            rows = torch.arange(len(self), device=self.raw.device)[rows]
        return Pixels(self.raw, self.mean, self.std, self._dtype, rows.reshape(-1))

    def to(self, device=None, dtype=None) -> Pixels:
        rows = None if self.rows is None else self.rows.to(device)
        return Pixels(self.raw.to(device), self.mean, self.std, dtype or self._dtype, rows)

    def materialize(self) -> Tensor:
        """All rows as floats (mind the memory)."""
        return self[:]

    def __repr__(self) -> str:
        return f"Pixels(shape={tuple(self.shape)}, dtype={self.dtype})"


def subset(x, idx):
    """Rows ``idx`` of a split's ``x``, kept lazy when it is (:class:`Pixels`, embedded tokens)."""
    take = getattr(x, "subset", None)
    return take(idx) if take is not None else x[idx]


@dataclass
class Dataset:
    """A loaded dataset and what is needed to show its examples.

    Attributes:
        name: registry name.
        train, test: the splits.
        class_names: one name per class.
        modality: ``image`` or ``text``.
        mean, std: per-channel normalisation applied to images (to undo it for display).
        extra: modality-specific data (e.g. the vocabulary and embedding table for text).
    """

    name: str
    train: Split
    test: Split
    class_names: list[str]
    modality: str = "image"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


Loader = Callable[..., Dataset]
DATASETS: dict[str, Loader] = {}
MODALITIES: dict[str, str] = {}  # registry name -> "image" or "text"
TEXT_OPTIONS = ("maxlen", "ntoken", "embeddings")  # Config fields passed to text loaders


@dataclass(frozen=True)
class DatasetInfo:
    """What ``softdistill datasets`` shows about a registered dataset.

    Attributes:
        summary: one line, e.g. ``"MNIST digits, 1x28x28, 10 classes"``.
        sources: files or folders (relative to the data dir) any one of which makes the dataset
            available, in the order the loader tries them.
        builtin: needs no data dir (e.g. shipped with a dependency).
        downloadable: ``--download`` can fetch it (through torchvision).
    """

    summary: str
    sources: tuple[str, ...] = ()
    builtin: bool = False
    downloadable: bool = False


INFO: dict[str, DatasetInfo] = {}


def register(
    name: str, info: DatasetInfo | None = None, modality: str = "image"
) -> Callable[[Loader], Loader]:
    """Register ``loader(data_dir: Path | None, **options) -> Dataset`` under ``name``.

    A name ending in ``:`` registers a prefix (``folder:`` serves ``folder:PATH``, ``tsv:``
    serves ``tsv:PATH``). ``info`` feeds ``softdistill datasets``. A loader that accepts
    ``download=True`` can fetch its files. Text loaders (``modality="text"``) take the options
    :data:`TEXT_OPTIONS`.
    """

    def deco(fn: Loader) -> Loader:
        DATASETS[name] = fn
        MODALITIES[name] = modality
        if info is not None:
            INFO[name] = info
        return fn

    return deco


def _key(name: str) -> str:
    prefix = name.split(":", 1)[0] + ":" if ":" in name else None
    return prefix if prefix in DATASETS else name


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """``data_dir``, else ``$SOFTDISTILL_DATA``, else None."""
    if data_dir is None:
        data_dir = os.environ.get("SOFTDISTILL_DATA") or None
    return Path(data_dir).expanduser() if data_dir is not None else None


def cache_dir() -> Path:
    """Where decoded arrays are cached: ``$SOFTDISTILL_CACHE``, else
    ``$XDG_CACHE_HOME/softdistill``, else ``~/.cache/softdistill`` (never inside the repo)."""
    if os.environ.get("SOFTDISTILL_CACHE"):
        return Path(os.environ["SOFTDISTILL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "softdistill"


def locate(name: str, data_dir: str | os.PathLike | None) -> str | None:
    """The first of dataset ``name``'s sources present in ``data_dir``, or None."""
    info = INFO.get(name)
    data_dir = resolve_data_dir(data_dir)
    if info is None or data_dir is None:
        return None
    return next((s for s in info.sources if (data_dir / s).exists()), None)


def load(
    name: str, data_dir: str | os.PathLike | None = None, *, download: bool = False, **options
) -> Dataset:
    """Load dataset ``name`` (see :data:`DATASETS`) from ``data_dir``.

    Args:
        name: a registry name, or ``folder:PATH`` for an image-folder tree.
        data_dir: folder with the dataset files; default ``$SOFTDISTILL_DATA``.
        download: fetch missing files into ``data_dir`` (torchvision datasets only).
        options: passed to the loader.

    Raises:
        ValueError: unknown name.
        DataError: missing or malformed files (the message names the path and what was
            expected), or a download that cannot be done.
    """
    key = _key(name)
    if key not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; known: {sorted(DATASETS)}"
        )
    if download:
        if not (key in INFO and INFO[key].downloadable):
            raise DataError(
                f"dataset {name!r} cannot be downloaded; downloadable: "
                f"{sorted(k for k, v in INFO.items() if v.downloadable)}"
            )
        options["download"] = True
    return DATASETS[key](resolve_data_dir(data_dir), name=name, **options)


def load_config(cfg) -> Dataset:
    """The dataset of a run or pool configuration (with its ``download`` flag, if it has one);
    text loaders also get ``maxlen``, ``ntoken`` and ``embeddings`` from it."""
    options = {}
    if MODALITIES.get(_key(cfg.dataset)) == "text":
        options = {k: getattr(cfg, k) for k in TEXT_OPTIONS}
    return load(cfg.dataset, cfg.data_dir, download=getattr(cfg, "download", False), **options)


def normalise(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """``(x - mean) / std`` per channel; ``x`` is ``(N, C, H, W)``."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s
