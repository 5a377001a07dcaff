"""``folder:PATH``: any image dataset laid out as torchvision's ImageFolder.

Accepted trees::

    PATH/<class>/*.png|jpg|...                      one pool, split here into train/test
    PATH/train/<class>/*  and  PATH/test/<class>/*  the user's own split (``val/`` for ``test/``)

Class names are the sub-folder names, sorted. Images are grayscale (1 channel) when every file
is, else RGB; if sizes differ, all are resized (bicubic) to the most common size. Normalisation
uses the per-channel mean and std of the training split.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from softdistill.data.base import DataError, Dataset, DatasetInfo, register
from softdistill.data.images import to_split

__all__ = ["IMAGE_EXTENSIONS", "load_folder", "scan_folder"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
LAYOUT = "PATH/<class>/*.png|jpg (or PATH/train/<class>/... and PATH/test/<class>/...)"
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )


def _classes(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_folder(root: Path) -> dict[str, dict[str, list[Path]]]:
    """``{split: {class: [files]}}`` of an image-folder tree (split ``all`` when not split).

    Raises:
        DataError: the path is missing, not a folder, has no class folders, or a class folder
            holds no images.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"image folder not found: {root}; expected {LAYOUT}")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; expected {LAYOUT}")
    sub = _classes(root)
    test_name = "test" if "test" in sub else "val" if "val" in sub else None
    if "train" in sub and test_name:
        splits = {"train": root / "train", "test": root / test_name}
    elif "train" in sub or test_name:
        raise DataError(
            f"{root} has {'train/' if 'train' in sub else test_name + '/'} but not "
            f"{'test/ (or val/)' if 'train' in sub else 'train/'}; expected {LAYOUT}"
        )
    else:
        splits = {"all": root}
    out: dict[str, dict[str, list[Path]]] = {}
    for split, folder in splits.items():
        classes = _classes(folder)
        if not classes:
            loose = len(_images_in(folder))
            raise DataError(
                f"{folder} has no class sub-folders"
                + (f" ({loose} images directly inside)" if loose else "")
                + f"; expected {LAYOUT}"
            )
        out[split] = {}
        for c in classes:
            files = _images_in(folder / c)
            if not files:
                raise DataError(
                    f"class folder {folder / c} holds no images (extensions "
                    f"{', '.join(IMAGE_EXTENSIONS)})"
                )
            out[split][c] = files
    if "test" in out:
        extra = sorted(set(out["test"]) - set(out["train"]))
        if extra:
            raise DataError(f"{splits['test']} has classes {extra} that train/ lacks")
    return out


def _read_images(files: list[Path]) -> np.ndarray:
    """Decode ``files`` into ``(N, H, W)`` (all grayscale) or ``(N, H, W, 3)`` uint8."""
    from PIL import Image, UnidentifiedImageError

    images, modes = [], set()
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                modes.add(im.mode)
                images.append(im.copy())
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise DataError(f"cannot read image {f}: {e}") from None
    gray = modes <= GRAY_MODES
    sizes = Counter(im.size for im in images)
    size = sizes.most_common(1)[0][0]
    if len(sizes) > 1:
        log.info("resizing images to %dx%d (sizes found: %s)", *size, dict(sizes))
    out = []
    for im in images:
        im = im.convert("L" if gray else "RGB")
        if im.size != size:
            im = im.resize(size, Image.BICUBIC)
        out.append(np.asarray(im))
    return np.stack(out)


def _split_pool(
    per_class: dict[str, list[Path]], test_fraction: float, seed: int
) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """A deterministic stratified split: ``test_fraction`` of each class (at least one)."""
    rng = np.random.default_rng(seed)
    train, test = {}, {}
    for c, files in per_class.items():
        if len(files) < 2:
            raise DataError(
                f"class {c!r} has {len(files)} image ({files[0]}); at least 2 are needed to "
                "split it into train and test (or give PATH/train/ and PATH/test/ folders)"
            )
        order = rng.permutation(len(files))
        n_test = min(len(files) - 1, max(1, round(test_fraction * len(files))))
        test[c] = [files[i] for i in sorted(order[:n_test])]
        train[c] = [files[i] for i in sorted(order[n_test:])]
    return train, test


@register(
    "folder:",
    DatasetInfo("your own images: an image-folder tree, PATH/<class>/*.png|jpg"),
)
def load_folder(
    data_dir: Path | None = None,
    *,
    name: str,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """The image-folder tree named by ``name = "folder:PATH"`` (a relative PATH is looked up
    in ``data_dir`` when it is not found as given)."""
    path = Path(name.split(":", 1)[1]).expanduser()
    if not str(path) or str(path) == ".":
        raise DataError(f"dataset {name!r}: give the folder, as folder:PATH; expected {LAYOUT}")
    if not path.is_absolute() and not path.exists() and data_dir is not None:
        path = data_dir / path
    tree = scan_folder(path)
    if "all" in tree:
        train_files, test_files = _split_pool(tree["all"], test_fraction, seed)
    else:
        train_files, test_files = tree["train"], tree["test"]
    classes = list(train_files)
    index = {c: i for i, c in enumerate(classes)}

    def arrays(files: dict[str, list[Path]]) -> tuple[list[Path], np.ndarray]:
        paths = [f for c in files for f in files[c]]
        return paths, np.array([index[c] for c in files for _ in files[c]], np.int64)

    p_tr, y_tr = arrays(train_files)
    p_te, y_te = arrays(test_files)
    x = _read_images(p_tr + p_te)  # one pass: common channels and size for both splits
    x_tr, x_te = x[: len(p_tr)], x[len(p_tr) :]
    pixels = torch.from_numpy(x_tr).float().div_(255)
    pixels = pixels.unsqueeze(-1) if pixels.dim() == 3 else pixels  # (N, H, W, C)
    mean = tuple(pixels.mean(dim=(0, 1, 2)).tolist())
    std = tuple(max(s, 1e-6) for s in pixels.std(dim=(0, 1, 2)).tolist())
    return Dataset(
        name=name,
        train=to_split(x_tr, y_tr, mean, std),
        test=to_split(x_te, y_te, mean, std),
        class_names=classes,
        mean=mean,
        std=std,
        extra={"source": str(path)},
    )
