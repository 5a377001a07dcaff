"""Image dataset sources: JPEG npz + cache, torchvision layouts, folder:PATH, errors, the
``softdistill datasets`` command. All files are written by the tests (tiny)."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from softdistill.cli import main
from softdistill.data import DataError, load, locate
from softdistill.data.images import IMAGE_STATS


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTDISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SOFTDISTILL_DATA", raising=False)


def _rgb_images(n: int, seed: int, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth images (JPEG-friendly) so decoding is close to the source
    base = rng.integers(0, 256, (n, 1, 1, 3))
    ramp = np.linspace(0, 60, size, dtype=np.int64)[None, :, None, None]
    return np.clip(base + ramp, 0, 255).astype(np.uint8) * np.ones((1, 1, size, 1), np.uint8)


def _jpeg_npz(path, n_train=6, n_test=4):
    """A tiny cifar10_jpeg.npz in the shared-data format; returns the JPEG bytes per split."""
    out, raw = {}, {}
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        blobs = []
        for im in _rgb_images(n, seed):
            b = io.BytesIO()
            Image.fromarray(im).save(b, format="JPEG", quality=75)
            blobs.append(np.frombuffer(b.getvalue(), np.uint8))
        out[f"jpeg_{split}"] = np.concatenate(blobs)
        out[f"offsets_{split}"] = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
        out[f"y_{split}"] = (np.arange(n) % 10).astype(np.uint8)
        raw[split] = blobs
    out["classes"] = np.array([f"c{i}" for i in range(10)])
    np.savez(path, **out)
    return raw


def test_cifar10_from_jpeg_npz_decodes_once_and_caches(tmp_path, monkeypatch):
    raw = _jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    d = load("cifar10", tmp_path)
    assert d.train.x.shape == (6, 3, 32, 32) and d.test.x.shape == (4, 3, 32, 32)
    assert d.train.y.tolist() == [0, 1, 2, 3, 4, 5] and d.class_names[3] == "c3"
    # pixel (0, 0) of train image 2, as Pillow decodes it, normalised with CIFAR-10's stats
    px = np.asarray(Image.open(io.BytesIO(raw["train"][2].tobytes())).convert("RGB"))[0, 0]
    mean, std = IMAGE_STATS["cifar10"]
    want = (px / 255.0 - np.array(mean)) / np.array(std)
    assert np.allclose(d.train.x[2, :, 0, 0].numpy(), want, atol=1e-5)
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1 and (entries[0] / "complete").is_file()
    assert entries[0].name.startswith("cifar10_jpeg-")

    # the second load reads the cache: decoding is not called again
    import softdistill.data.formats as formats

    def boom(*a, **k):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(formats, "_decode_jpegs", boom)
    again = load("cifar10", tmp_path)
    assert torch.equal(again.train.x[:], d.train.x[:])


def test_jpeg_npz_with_a_broken_image_names_it(tmp_path):
    _jpeg_npz(tmp_path / "cifar10_jpeg.npz")
    a = dict(np.load(tmp_path / "cifar10_jpeg.npz"))
    buf = a["jpeg_test"].copy()
    o = a["offsets_test"]
    buf[o[1] : o[2]] = 7  # image 1 of the test split is garbage
    a["jpeg_test"] = buf
    np.savez(tmp_path / "cifar10_jpeg.npz", **a)
    with pytest.raises(DataError, match=r"cifar10_jpeg\.npz: image 1 of jpeg_test"):
        load("cifar10", tmp_path)


def test_keras_npz_is_preferred_and_checked(tmp_path):
    x = np.zeros((5, 32, 32, 3), np.uint8)
    np.savez(tmp_path / "svhn.npz", x_train=x, y_train=np.arange(5), x_test=x[:2], y_test=[0, 10])
    with pytest.raises(DataError, match=r"(?s)svhn\.npz: y_test must hold integer classes 0\.\.9"):
        load("svhn", tmp_path)
    np.savez(
        tmp_path / "svhn.npz", x_train=x[:, :28], y_train=np.arange(5), x_test=x, y_test=[0] * 5
    )
    with pytest.raises(DataError, match=r"shape \(C, H, W\) = \(3, 32, 32\), got \(3, 28, 32\)"):
        load("svhn", tmp_path)


def test_missing_dataset_lists_every_source(tmp_path):
    with pytest.raises(DataError) as e:
        load("cifar10", tmp_path)
    msg = str(e.value)
    for want in (str(tmp_path), "cifar10.npz", "cifar10_jpeg.npz", "cifar-10-batches-py"):
        assert want in msg
    assert "--download" in msg


def test_download_without_torchvision_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision -> ImportError
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(DataError, match=r"--download needs torchvision.*softdistill\[vision\]"):
        load("mnist", tmp_path, download=True)
    with pytest.raises(DataError, match="cannot be downloaded"):
        load("digits", download=True)


def _idx(path, a: np.ndarray):
    header = bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">i4").tobytes()
    with gzip.open(str(path) + ".gz", "wb") as f:
        f.write(header + a.astype(np.uint8).tobytes())


def test_torchvision_mnist_layout_and_mnist_rgb(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (7, 28, 28))
    _idx(raw / "train-images-idx3-ubyte", x)
    _idx(raw / "train-labels-idx1-ubyte", np.arange(7))
    _idx(raw / "t10k-images-idx3-ubyte", x[:3])
    _idx(raw / "t10k-labels-idx1-ubyte", np.arange(3))
    assert locate("mnist", tmp_path) == "MNIST/raw"
    d = load("mnist", tmp_path)
    assert d.train.x.shape == (7, 1, 28, 28) and d.test.y.tolist() == [0, 1, 2]
    assert abs(d.train.x[1, 0, 5, 5].item() - (x[1, 5, 5] / 255 - 0.1307) / 0.3081) < 1e-5
    rgb = load("mnist_rgb", tmp_path)
    assert rgb.train.x.shape == (7, 3, 32, 32) and rgb.sample_shape == (3, 32, 32)
    assert torch.equal(rgb.train.x[:, 0], rgb.train.x[:, 2])  # gray copied to 3 channels
    # the resize is Pillow's bicubic, as the original code's transforms.Resize
    want = np.asarray(Image.fromarray(x[4].astype(np.uint8)).resize((32, 32), Image.BICUBIC))
    got = rgb.train.x[4, 1] * 0.3081 + 0.1307
    assert np.allclose(got.numpy(), want / 255.0, atol=1e-5)


def test_download_goes_through_torchvision_into_the_data_dir(tmp_path, monkeypatch):
    """A stand-in torchvision writes MNIST's raw files as the real one does; no network."""
    import types

    calls = []

    class MNIST:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            raw = Path(root) / "MNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            prefix = "train" if train else "t10k"
            _idx(raw / f"{prefix}-images-idx3-ubyte", np.full((4, 28, 28), 9))
            _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(4))

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(MNIST=MNIST)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake.datasets)
    with pytest.raises(DataError, match="--download"):
        load("mnist", tmp_path / "data")  # not asked to download: a clear error
    d = load("mnist", tmp_path / "data", download=True)
    assert calls == [(str(tmp_path / "data"), True, True), (str(tmp_path / "data"), False, True)]
    assert d.train.x.shape == (4, 1, 28, 28) and d.extra["source"].endswith("MNIST/raw")
    load("mnist", tmp_path / "data", download=True)  # present now: no second download
    assert len(calls) == 2


def test_torchvision_cifar_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", 2) for i in range(1, 6)), ("test_batch", 3)]:
        batch = {"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), "labels": [1] * n}
        (folder / name).write_bytes(pickle.dumps(batch))
    d = load("cifar10", tmp_path)
    assert d.train.x.shape == (10, 3, 32, 32) and d.test.x.shape == (3, 3, 32, 32)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (folder / "test_batch").write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(DataError, match=r"test_batch: refusing to load builtins\.print"):
        load("cifar10", tmp_path)


def _tree(root, classes=("cat", "dog", "eel"), n=4, size=(10, 8), mode="RGB"):
    rng = np.random.default_rng(0)
    for i, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for j in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            im = np.clip(rng.normal(60 * i + 40, 20, shape), 0, 255).astype(np.uint8)
            Image.fromarray(im).convert(mode).save(root / c / f"{j}.png")


def test_folder_dataset_split_and_normalised(tmp_path):
    _tree(tmp_path / "pets")
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")
    d = load(f"folder:{tmp_path / 'pets'}")
    assert d.class_names == ["cat", "dog", "eel"] and d.sample_shape == (3, 8, 10)
    assert len(d.train) == 9 and len(d.test) == 3  # one test image of each class (20% of 4)
    assert sorted(d.test.y.tolist()) == [0, 1, 2]
    assert d.train.x[:].mean(dim=(0, 2, 3)).abs().max() < 1e-4  # train statistics normalise it
    assert load(f"folder:{tmp_path / 'pets'}").train.x[:].equal(d.train.x[:])  # deterministic
    # relative to the data dir, and grayscale trees stay one channel
    _tree(tmp_path / "gray", mode="L", size=(6, 6))
    g = load("folder:gray", tmp_path)
    assert g.sample_shape == (1, 6, 6)


def test_folder_with_own_split_and_mixed_sizes(tmp_path):
    _tree(tmp_path / "t" / "train", n=3, size=(8, 8))
    _tree(tmp_path / "t" / "test", classes=("cat", "eel"), n=1, size=(12, 12))
    d = load(f"folder:{tmp_path / 't'}")
    assert len(d.train) == 9 and len(d.test) == 2 and d.sample_shape == (3, 8, 8)
    assert d.test.y.tolist() == [0, 2]  # class indices follow train/'s classes


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda r: None, r"image folder not found: .*nope; expected PATH/<class>/"),
        (lambda r: r.mkdir(), r"has no class sub-folders; expected PATH/<class>/"),
        (lambda r: (r / "a").mkdir(parents=True), r"class folder .*a holds no images"),
        (lambda r: (r / "train" / "a").mkdir(parents=True), r"has train/ but not test/"),
    ],
)
def test_malformed_folders_say_what_was_expected(tmp_path, setup, message):
    root = tmp_path / "nope"
    setup(root)
    with pytest.raises(DataError, match=message):
        load(f"folder:{root}")


def test_unreadable_image_is_named(tmp_path):
    _tree(tmp_path / "p")
    (tmp_path / "p" / "dog" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*dog/bad\.png"):
        load(f"folder:{tmp_path / 'p'}")


def test_folder_distills_end_to_end(tmp_path, capsys):
    _tree(tmp_path / "pets", size=(8, 8), n=5)
    out = tmp_path / "run"
    argv = ["distill", "--dataset", f"folder:{tmp_path / 'pets'}", "--out", str(out)]
    argv += ["--arch", "mlp", "--arch_args", "hidden=[8]", "--outer_steps", "3", "--quiet"]
    assert main([*argv, "--baseline_lrs", "0.1", "--batch_size", "8"]) == 0
    ev = json.loads((out / "eval.json").read_text())
    assert ev["protocol"]["dataset"] == f"folder:{tmp_path / 'pets'}"
    assert 0 <= ev["distilled"]["mean"] <= 1


def test_cli_missing_dataset_is_one_clear_error(tmp_path, capsys):
    code = main(["distill", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--quiet",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "dataset 'cifar10' not found" in err and "Traceback" not in err
    code = main(["distill", "--dataset", f"folder:{tmp_path / 'x'}", "--quiet",
                 "--out", str(tmp_path / "run2")])  # fmt: skip
    assert code == 1 and "image folder not found" in capsys.readouterr().err


def test_datasets_command(tmp_path, capsys):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8), y_train=[0, 1],
             x_test=np.zeros((1, 28, 28), np.uint8), y_test=[0])  # fmt: skip
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert lines["mnist"].split()[1] == "yes" and lines["mnist_rgb"].split()[1] == "yes"
    assert lines["cifar10"].split()[1] == "no" and lines["digits"].split()[1] == "yes"
    assert "folder:PATH" in lines
    assert main(["datasets", "--data-dir", str(tmp_path), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["datasets"]}
    assert rows["mnist"]["available"] is True and rows["mnist"]["where"] == "mnist.npz"
    assert rows["svhn"]["available"] is False and rows["svhn"]["downloadable"] is True
    assert main(["datasets", "--data-dir", str(tmp_path / "missing")]) == 1
    assert "data directory not found" in capsys.readouterr().err
