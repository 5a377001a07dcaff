"""Readers for the on-disk formats image datasets come in, and the decoded-array cache.

Every reader returns numpy arrays and raises :class:`~softdistill.data.DataError` naming the file
and what was expected. Nothing here executes code from a file: ``.npz`` is read without pickle,
and the CIFAR python batches (pickles) through an unpickler that only rebuilds numpy arrays.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from softdistill.data.base import DataError, cache_dir
from softdistill.progress import task

__all__ = [
    "CACHE_VERSION",
    "KERAS_KEYS",
    "cached_arrays",
    "decode_jpeg_npz",
    "file_sha256",
    "load_npz_arrays",
    "read_cifar_pickle",
    "read_idx",
    "read_svhn_mat",
]

log = logging.getLogger(__name__)

KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")
JPEG_KEYS = ("jpeg_train", "offsets_train", "y_train", "jpeg_test", "offsets_test", "y_test")
CACHE_VERSION = 1  # bump when a cached array's meaning changes


# ----------------------------------------------------------------------------- npz
def load_npz_arrays(path: Path, keys: Sequence[str] = KERAS_KEYS, optional=()) -> dict:
    """Read ``keys`` (and ``optional`` ones when present) from a ``.npz`` without pickle."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"dataset file not found: {path}\n"
            f"expected a Keras-style .npz with arrays {', '.join(keys)}; pass the folder "
            "holding it with --data-dir (or set SOFTDISTILL_DATA)"
        )
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(
                    f"{path} lacks arrays {missing}; it has {f.files} (expected {', '.join(keys)})"
                )
            return {k: f[k] for k in (*keys, *optional) if k in f.files}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read {path} (corrupt or truncated?): {e}") from None


# ----------------------------------------------------------------------------- cache
def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cached_arrays(key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``build()``'s arrays, stored once under ``cache_dir()/key/`` as ``.npy`` files.

    A cache that cannot be written (read-only home, full disk) is skipped: the arrays are
    rebuilt next time instead of failing the run.
    """
    folder = cache_dir() / key
    done = folder / "complete"
    if done.is_file():
        try:
            names = done.read_text().split()
            return {n: np.load(folder / f"{n}.npy", allow_pickle=False) for n in names}
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable cache %s: %s", folder, e)
    arrays = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, a in arrays.items():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".npy")
            with os.fdopen(fd, "wb") as f:
                np.save(f, a, allow_pickle=False)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; a cache may be shared
            os.replace(tmp, folder / f"{name}.npy")
        done.write_text(" ".join(arrays) + "\n")  # written last: marks a complete entry
    except OSError as e:
        log.warning("cannot write the dataset cache %s (%s); continuing without it", folder, e)
    return arrays


# ----------------------------------------------------------------------------- JPEG npz
def _decode_jpegs(path: Path, buf: np.ndarray, offsets: np.ndarray, split: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if offsets.ndim != 1 or len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != len(buf):
        raise DataError(
            f"{path}: offsets_{split} must run from 0 to len(jpeg_{split}) = {len(buf)}, "
            f"got {len(offsets)} offsets ending at {offsets[-1] if len(offsets) else None}"
        )
    if np.any(np.diff(offsets) <= 0):
        raise DataError(f"{path}: offsets_{split} must be strictly increasing")
    images = []
    n = len(offsets) - 1
    with task(f"decoding {path.name} ({split}, once; cached)", n, unit="image") as t:
        for i in range(n):
            data = buf[offsets[i] : offsets[i + 1]].tobytes()
            try:
                with Image.open(io.BytesIO(data)) as im:
                    images.append(np.asarray(im.convert("RGB")))
            except (UnidentifiedImageError, OSError, SyntaxError) as e:
                raise DataError(
                    f"{path}: image {i} of jpeg_{split} is not a readable JPEG: {e}"
                ) from None
            t.update()
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DataError(f"{path}: the {split} images differ in size: {sorted(shapes)[:4]}")
    return np.stack(images)  # (N, H, W, 3) uint8


def decode_jpeg_npz(path: Path) -> dict[str, np.ndarray]:
    """Keras-style arrays from a JPEG-bytes ``.npz`` (``jpeg_<split>`` + ``offsets_<split>`` +
    ``y_<split>``), decoded once with Pillow and cached by the file's sha256."""
    path = Path(path)
    a = load_npz_arrays(path, JPEG_KEYS, optional=("classes",))
    key = f"{path.stem}-{file_sha256(path)[:16]}-v{CACHE_VERSION}"

    def build() -> dict[str, np.ndarray]:
        out = {}
        for split in ("train", "test"):
            x = _decode_jpegs(path, a[f"jpeg_{split}"], a[f"offsets_{split}"], split)
            y = a[f"y_{split}"]
            if len(y) != len(x):
                raise DataError(f"{path}: {len(x)} {split} images but y_{split} has {len(y)}")
            out[f"x_{split}"], out[f"y_{split}"] = x, y
        return out

    arrays = cached_arrays(key, build)
    if "classes" in a:
        arrays["classes"] = a["classes"]
    return arrays


# ----------------------------------------------------------------------------- torchvision
def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format; ``.gz`` or not) as a uint8 array."""
    path = Path(path)
    if not path.is_file() and Path(str(path) + ".gz").is_file():
        path = Path(str(path) + ".gz")
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic {data[:4]!r})")
    ndim = data[3]
    dims = np.frombuffer(data, ">i4", count=ndim, offset=4)
    n = int(np.prod(dims))
    if len(data) != 4 + 4 * ndim + n:
        raise DataError(f"{path}: header says {tuple(dims)} but the file has the wrong size")
    return np.frombuffer(bytearray(data), np.uint8, offset=4 + 4 * ndim).reshape(dims)


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds plain containers and numpy arrays only (CIFAR's python batches)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_pickle(path: Path) -> dict:
    """One CIFAR-10/100 python batch (``data_batch_1``, ``test``, ...) as a dict of arrays."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(f, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise DataError(f"cannot read CIFAR batch {path}: {e}") from None
    if not isinstance(d, dict) or "data" not in d:
        raise DataError(f"{path} is not a CIFAR python batch (no 'data' entry)")
    return d


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """SVHN's ``<split>_32x32.mat``: ``(N, 32, 32, 3)`` uint8 images, labels 0-9 (10 -> 0)."""
    try:
        from scipy.io import loadmat
    except ImportError:  # scipy comes with scikit-learn; be clear if it is missing
        raise DataError(f"reading {path} needs scipy (pip install scipy)") from None
    try:
        m = loadmat(str(path))
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read SVHN file {path}: {e}") from None
    if "X" not in m or "y" not in m:
        raise DataError(f"{path} lacks the SVHN arrays 'X' and 'y'")
    x = np.transpose(m["X"], (3, 0, 1, 2))  # (32, 32, 3, N) -> (N, 32, 32, 3)
    y = m["y"].astype(np.int64).reshape(-1) % 10
    return x, y
