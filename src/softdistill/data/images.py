"""Image datasets: the embedded ``digits``, and MNIST-family / CIFAR / SVHN from a data dir.

Each dataset is read from the first source present in the data dir, in this order:

1. a Keras-style ``.npz`` (``x_train, y_train, x_test, y_test``; for CIFAR-10 also the JPEG-bytes
   ``cifar10_jpeg.npz``, decoded once with Pillow and cached outside the repo);
2. torchvision's on-disk layout (``MNIST/raw/``, ``cifar-10-batches-py/``, ...);
3. with ``download=True``, torchvision downloads into the data dir (then read as 2.).

Pixels are scaled to [0, 1] and normalised once with the dataset's standard per-channel
statistics (:data:`IMAGE_STATS`), so the outer loop only indexes tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from softdistill.data.base import (
    DataError,
    Dataset,
    DatasetInfo,
    Pixels,
    Split,
    normalise,
    register,
)
from softdistill.data.formats import (
    CACHE_VERSION,
    cached_arrays,
    decode_jpeg_npz,
    file_sha256,
    load_npz_arrays,
    read_cifar_pickle,
    read_idx,
    read_svhn_mat,
)

__all__ = ["IMAGE_SETS", "IMAGE_STATS", "ImageSet", "load_npz_arrays", "to_split"]

# (mean, std) per channel, pixels scaled to [0, 1]: the values the original dataset-distillation
# code normalises with (train-split statistics of the original files).
IMAGE_STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "mnist_rgb": ((0.1307,) * 3, (0.3081,) * 3),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
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
CIFAR10_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
CIFAR100_NAMES = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy
bridge bus
butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()  # noqa: SIM905  (100 names, fine-label order)
assert len(CIFAR100_NAMES) == 100


# ----------------------------------------------------------------------------- digits
@register("digits", DatasetInfo("scikit-learn's 8x8 digits, 1x8x8, 10 classes", builtin=True))
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
        train=to_split(x_tr, y_tr, mean, std),
        test=to_split(x_te, y_te, mean, std),
        class_names=DIGITS_NAMES,
        mean=mean,
        std=std,
    )


def to_split(x: np.ndarray, y: np.ndarray, mean, std) -> Split:
    """``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` pixels -> a normalised ``Split``.

    ``uint8`` pixels stay 8-bit (:class:`~softdistill.data.Pixels`, normalised as rows are
    read: a quarter of the memory); floats are taken as already in [0, 1] and normalised in place
    after one float conversion.
    """
    t = torch.from_numpy(np.ascontiguousarray(x))
    scale = 255.0 if t.dtype == torch.uint8 else 1.0
    if t.dim() == 3:  # (N, H, W) grayscale -> (N, 1, H, W)
        t = t.unsqueeze(1)
    elif t.dim() == 4 and t.shape[-1] in (1, 3) and t.shape[1] not in (1, 3):  # NHWC -> NCHW
        t = t.permute(0, 3, 1, 2)
    labels = torch.from_numpy(np.asarray(y).astype(np.int64).reshape(-1))
    if t.dtype == torch.uint8:  # kept as 8-bit pixels, normalised as rows are read
        return Split(Pixels(t.contiguous(), tuple(mean), tuple(std)), labels)
    t = t.to(torch.float32, memory_format=torch.contiguous_format).contiguous()
    c = t.shape[1]
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * scale
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * scale
    if m.shape[1] not in (1, c):
        raise ValueError(f"normalisation has {m.shape[1]} channels, images have {c}")
    t.sub_(m).div_(s)
    return Split(t, labels)


# ----------------------------------------------------------------------------- sources
Arrays = dict[str, np.ndarray]  # x_train, y_train, x_test, y_test (+ classes)


def _mnist_raw(folder: str) -> Callable[[Path], Arrays]:
    def read(root: Path) -> Arrays:
        raw = root / folder
        return {
            "x_train": read_idx(raw / "train-images-idx3-ubyte"),
            "y_train": read_idx(raw / "train-labels-idx1-ubyte"),
            "x_test": read_idx(raw / "t10k-images-idx3-ubyte"),
            "y_test": read_idx(raw / "t10k-labels-idx1-ubyte"),
        }

    return read


def _cifar_batches(folder: str, train: list[str], test: str, label_key: str):
    def read(root: Path) -> Arrays:
        out: Arrays = {}
        for split, files in (("train", train), ("test", [test])):
            parts = [read_cifar_pickle(root / folder / f) for f in files]
            x = np.concatenate([np.asarray(p["data"], np.uint8) for p in parts])
            if x.ndim != 2 or x.shape[1] != 3072:
                raise DataError(f"{root / folder}: 'data' must be (N, 3072), got {x.shape}")
            out[f"x_{split}"] = x.reshape(-1, 3, 32, 32)  # NCHW as stored
            out[f"y_{split}"] = np.concatenate([np.asarray(p[label_key]) for p in parts])
        return out

    return read


def _svhn_mat(root: Path) -> Arrays:
    x_tr, y_tr = read_svhn_mat(root / "train_32x32.mat")
    x_te, y_te = read_svhn_mat(root / "test_32x32.mat")
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}


def _tv_download(cls: str, root: Path) -> None:
    """Fetch ``torchvision.datasets.<cls>`` (both splits) into ``root``."""
    try:
        import torchvision.datasets as tvd
    except ImportError:
        raise DataError(
            "--download needs torchvision, which is not installed: pip install "
            "'softdistill[vision]' (or pip install torchvision), or put the dataset files in "
            f"{root} yourself"
        ) from None
    root.mkdir(parents=True, exist_ok=True)
    try:
        ds = getattr(tvd, cls)
        if cls == "SVHN":
            for split in ("train", "test"):
                ds(str(root), split=split, download=True)
        else:
            for train in (True, False):
                ds(str(root), train=train, download=True)
    except Exception as e:  # network, checksum, disk: torchvision raises many kinds
        raise DataError(f"downloading {cls} into {root} failed: {e}") from None


@dataclass(frozen=True)
class ImageSet:
    """A known image dataset: its shape, classes and where its files may be.

    Attributes:
        npz: Keras-style ``.npz`` names in the data dir, tried first, in order
            (``*_jpeg.npz``: JPEG bytes + offsets, decoded with Pillow and cached).
        torchvision: ``(marker, reader, torchvision class)``: when ``marker`` exists in the
            data dir, ``reader(data_dir)`` reads torchvision's layout; the class downloads it.
    """

    name: str
    summary: str
    shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    npz: tuple[str, ...]
    torchvision: tuple[str, Callable[[Path], Arrays], str] | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        return (*self.npz, *((self.torchvision[0],) if self.torchvision else ()))

    def expected(self, data_dir: Path | None) -> str:
        where = f" in {data_dir}" if data_dir is not None else ""
        files = [
            f + (" (JPEG bytes + offsets)" if f.endswith("_jpeg.npz") else "") for f in self.npz
        ]
        text = f"expected {' or '.join(files)} (Keras-style .npz: x_train, y_train, x_test, y_test)"
        if self.torchvision:
            text += f" or torchvision's layout ({self.torchvision[0]})"
        return text + where

    def read(self, data_dir: Path | None, download: bool = False) -> tuple[Arrays, str]:
        """The raw arrays and the source they came from."""
        if data_dir is None:
            raise DataError(
                f"dataset {self.name!r} needs a data directory ({self.expected(None)}): "
                "pass --data-dir DIR or set SOFTDISTILL_DATA"
            )
        for file in self.npz:
            path = data_dir / file
            if path.is_file():
                if file.endswith("_jpeg.npz"):
                    return decode_jpeg_npz(path), str(path)
                return load_npz_arrays(path, optional=("classes",)), str(path)
        tv = self.torchvision
        if tv and not (data_dir / tv[0]).exists() and download:
            _tv_download(tv[2], data_dir)
        if tv and (data_dir / tv[0]).exists():
            return tv[1](data_dir), str(data_dir / tv[0])
        hint = " or pass --download (needs torchvision)" if tv else ""
        if not data_dir.is_dir():
            raise DataError(
                f"data directory not found: {data_dir} (dataset {self.name!r}: "
                f"{self.expected(None)}){hint}"
            )
        raise DataError(f"dataset {self.name!r} not found: {self.expected(data_dir)}{hint}")


def _check(spec: ImageSet, a: Arrays, source: str) -> None:
    """Shapes and labels of raw arrays, before any conversion."""
    n_classes = len(spec.class_names)
    for split in ("train", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if x.ndim not in (3, 4) or len(x) == 0:
            raise DataError(
                f"{source}: x_{split} must be (N, H, W) or (N, H, W, C) images, got {x.shape}"
            )
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{source}: x_{split} has {len(x)} images but y_{split} is {y.shape}")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes:
            raise DataError(
                f"{source}: y_{split} must hold integer classes 0..{n_classes - 1}, got "
                f"{y.dtype} in [{y.min()}, {y.max()}]"
            )


def _build(spec: ImageSet, data_dir: Path | None, download: bool, transform=None) -> Dataset:
    a, source = spec.read(data_dir, download)
    _check(spec, a, source)
    if transform is not None:  # cached by the source file's hash: Pillow resizing takes seconds
        raw, src = a, Path(source)
        if src.is_file():
            key = f"{spec.name}-{file_sha256(src)[:16]}-v{CACHE_VERSION}"
            a = cached_arrays(key, lambda: transform(raw))
        else:
            a = transform(raw)
    mean, std = IMAGE_STATS[spec.name]
    train = to_split(a["x_train"], a["y_train"], mean, std)
    test = to_split(a["x_test"], a["y_test"], mean, std)
    if train.x.shape[1:] != spec.shape:
        raise DataError(
            f"{source}: expected {spec.name} images of shape (C, H, W) = {spec.shape}, "
            f"got {tuple(train.x.shape[1:])}"
        )
    names = spec.class_names
    if "classes" in a and len(a["classes"]) == len(names):
        names = tuple(str(c) for c in a["classes"])
    return Dataset(
        name=spec.name,
        train=train,
        test=test,
        class_names=list(names),
        mean=mean,
        std=std,
        extra={"source": source},
    )


MNIST_TV = ("MNIST/raw", _mnist_raw("MNIST/raw"), "MNIST")
IMAGE_SETS = {
    s.name: s
    for s in (
        ImageSet(
            "mnist", "MNIST digits, 1x28x28, 10 classes", (1, 28, 28), tuple(DIGITS_NAMES),
            ("mnist.npz",), MNIST_TV,
        ),
        ImageSet(
            "fashion_mnist", "Fashion-MNIST, 1x28x28, 10 classes", (1, 28, 28),
            tuple(FASHION_NAMES), ("fashion_mnist.npz",),
            ("FashionMNIST/raw", _mnist_raw("FashionMNIST/raw"), "FashionMNIST"),
        ),
        ImageSet(
            "mnist_rgb", "MNIST as RGB, resized to 3x32x32 (for 32x32 nets), 10 classes",
            (3, 32, 32), tuple(DIGITS_NAMES), ("mnist.npz",), MNIST_TV,
        ),
        ImageSet(
            "cifar10", "CIFAR-10, 3x32x32, 10 classes", (3, 32, 32), tuple(CIFAR10_NAMES),
            ("cifar10.npz", "cifar10_jpeg.npz"),
            (
                "cifar-10-batches-py",
                _cifar_batches(
                    "cifar-10-batches-py",
                    [f"data_batch_{i}" for i in range(1, 6)],
                    "test_batch",
                    "labels",
                ),
                "CIFAR10",
            ),
        ),
        ImageSet(
            "cifar100", "CIFAR-100 (fine labels), 3x32x32, 100 classes", (3, 32, 32),
            tuple(CIFAR100_NAMES), ("cifar100.npz",),
            (
                "cifar-100-python",
                _cifar_batches("cifar-100-python", ["train"], "test", "fine_labels"),
                "CIFAR100",
            ),
        ),
        ImageSet(
            "svhn", "SVHN digits, 3x32x32, 10 classes", (3, 32, 32), tuple(DIGITS_NAMES),
            ("svhn.npz",), ("train_32x32.mat", _svhn_mat, "SVHN"),
        ),
    )
}  # fmt: skip


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    """``(N, H, W)`` uint8 -> ``(N, size, size)`` uint8 with Pillow's bicubic filter (as the
    original code's ``transforms.Resize(..., BICUBIC)``)."""
    from PIL import Image

    if x.shape[1:] == (size, size):
        return x
    return np.stack(
        [np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in x]
    )


def _gray_to_rgb32(a: Arrays) -> Arrays:
    out = dict(a)
    for split in ("train", "test"):
        x = a[f"x_{split}"]
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.dtype != np.uint8:  # floats in [0, 1] -> 8-bit, as a PIL image would be
            x = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
        x = _resize(x, 32)
        out[f"x_{split}"] = np.repeat(x[:, None], 3, axis=1)  # (N, 3, 32, 32)
    return out


def _loader(spec: ImageSet, transform=None):
    def load(data_dir: Path | None = None, *, name: str = spec.name, download: bool = False):
        return _build(spec, data_dir, download, transform)

    load.__name__ = f"load_{spec.name}"
    load.__doc__ = f"{spec.summary}; {spec.expected(None)}."
    return load


for _spec in IMAGE_SETS.values():
    register(
        _spec.name, DatasetInfo(_spec.summary, _spec.sources, downloadable=bool(_spec.torchvision))
    )(_loader(_spec, _gray_to_rgb32 if _spec.name == "mnist_rgb" else None))


@register("usps", DatasetInfo("USPS digits, 16x16 upsampled to 1x28x28, 10 classes", ("usps.npz",)))
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
