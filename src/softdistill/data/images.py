"""Image datasets: the embedded ``digits`` and Keras-style ``.npz`` files in a data dir."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from softdistill.data import DataError, Dataset, Split, normalise, register

__all__ = ["IMAGE_STATS", "load_npz_arrays"]

# (mean, std) per channel of the training split, pixels scaled to [0, 1].
IMAGE_STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    # usps.npz upsampled to 28x28 (bilinear), as loaded below; computed on its training split
    "usps": ((0.2546,), (0.3522,)),
}
USPS_SIZE = 28  # LeNet's input size; USPS is stored at 16x16
DIGITS_NAMES = [str(i) for i in range(10)]
FASHION_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@register("digits")
def load_digits(data_dir: Path | None = None, *, name: str = "digits", test_fraction: float = 0.25):
    """scikit-learn's 8x8 digits (1,797 images, shipped with scikit-learn; no download).

    Split deterministically: a stratified ``test_fraction`` with a fixed seed.
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    x = d.images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, d.target, test_size=test_fraction, random_state=0, stratify=d.target
    )
    mean, std = (float(x_tr.mean()),), (float(x_tr.std()),)
    return Dataset(
        name="digits",
        train=_split(x_tr, y_tr, mean, std),
        test=_split(x_te, y_te, mean, std),
        class_names=DIGITS_NAMES,
        mean=mean,
        std=std,
    )


def _split(x: np.ndarray, y: np.ndarray, mean, std) -> Split:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if t.dim() == 3:  # (N, H, W) grayscale -> (N, 1, H, W)
        t = t.unsqueeze(1)
    elif t.dim() == 4 and t.shape[-1] in (1, 3):  # (N, H, W, C) -> (N, C, H, W)
        t = t.permute(0, 3, 1, 2).contiguous()
    return Split(normalise(t, mean, std), torch.from_numpy(y.astype(np.int64)))


KERAS_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz_arrays(path: Path, keys=KERAS_KEYS) -> dict[str, np.ndarray]:
    """Read ``keys`` from a ``.npz`` without pickle; clear errors for missing/corrupt files."""
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
                raise DataError(f"{path} lacks arrays {missing}; it has {f.files}")
            return {k: f[k] for k in keys}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read {path} (corrupt or truncated?): {e}") from None


def _keras_npz(name: str, data_dir: Path | None, class_names: list[str]) -> Dataset:
    if data_dir is None:
        raise DataError(
            f"dataset {name!r} needs a data directory holding {name}.npz: pass --data-dir DIR "
            "or set SOFTDISTILL_DATA"
        )
    a = load_npz_arrays(Path(data_dir) / f"{name}.npz")
    mean, std = IMAGE_STATS[name]
    scale = np.float32(255.0 if a["x_train"].dtype == np.uint8 else 1.0)
    return Dataset(
        name=name,
        train=_split(a["x_train"].astype(np.float32) / scale, a["y_train"], mean, std),
        test=_split(a["x_test"].astype(np.float32) / scale, a["y_test"], mean, std),
        class_names=class_names,
        mean=mean,
        std=std,
    )


@register("mnist")
def load_mnist(data_dir: Path | None = None, *, name: str = "mnist") -> Dataset:
    """MNIST from ``DATA_DIR/mnist.npz`` (Keras layout: x_train, y_train, x_test, y_test)."""
    return _keras_npz("mnist", data_dir, DIGITS_NAMES)


@register("fashion_mnist")
def load_fashion_mnist(data_dir: Path | None = None, *, name: str = "fashion_mnist") -> Dataset:
    """Fashion-MNIST from ``DATA_DIR/fashion_mnist.npz`` (Keras layout)."""
    return _keras_npz("fashion_mnist", data_dir, FASHION_NAMES)


@register("usps")
def load_usps(data_dir: Path | None = None, *, name: str = "usps") -> Dataset:
    """USPS from ``DATA_DIR/usps.npz`` (16x16 float32 in [0, 1]), upsampled to 28x28.

    Bilinear upsampling to MNIST's size lets networks trained on MNIST (LeNet) take USPS
    digits, as in the original MNIST->USPS adaptation experiments. Normalised with USPS's own
    statistics (:data:`IMAGE_STATS`), not MNIST's.
    """
    import torch.nn.functional as F

    if data_dir is None:
        raise DataError(
            "dataset 'usps' needs a data directory holding usps.npz: pass --data-dir DIR or set "
            "SOFTDISTILL_DATA"
        )
    a = load_npz_arrays(Path(data_dir) / "usps.npz")
    mean, std = IMAGE_STATS["usps"]

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        if x.ndim != 3:
            raise DataError(f"usps.npz images must be (N, H, W), got shape {x.shape}")
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1)
        if x.dtype == np.uint8:
            t = t / 255.0
        t = F.interpolate(t, size=(USPS_SIZE, USPS_SIZE), mode="bilinear", align_corners=False)
        return Split(normalise(t, mean, std), torch.from_numpy(y.astype(np.int64)))

    return Dataset(
        name=name,
        train=split(a["x_train"], a["y_train"]),
        test=split(a["x_test"], a["y_test"]),
        class_names=DIGITS_NAMES,
        mean=mean,
        std=std,
    )
