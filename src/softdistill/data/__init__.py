"""Datasets as in-memory tensors: ``Dataset(train=Split(x, y), test=Split(x, y), ...)``.

Every loader returns inputs already normalised (once, here), so the outer loop only indexes.
"""

from __future__ import annotations

from softdistill.data.base import (
    DATASETS,
    INFO,
    MODALITIES,
    TEXT_OPTIONS,
    DataError,
    Dataset,
    DatasetInfo,
    Pixels,
    Split,
    cache_dir,
    load,
    load_config,
    locate,
    normalise,
    register,
    resolve_data_dir,
    subset,
)

__all__ = [
    "DATASETS",
    "INFO",
    "MODALITIES",
    "TEXT_OPTIONS",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "Pixels",
    "Split",
    "cache_dir",
    "load",
    "load_config",
    "locate",
    "normalise",
    "register",
    "resolve_data_dir",
    "subset",
]

# the loaders register their datasets when imported
from softdistill.data import folder as _folder  # noqa: F401
from softdistill.data import images as _images  # noqa: F401
from softdistill.data import text as _text  # noqa: F401
