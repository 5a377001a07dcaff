from __future__ import annotations

import numpy as np
import pytest
import torch

from softdistill.data import DataError, Split, load


def test_digits_split_is_deterministic_and_normalised():
    a, b = load("digits"), load("digits")
    assert a.sample_shape == (1, 8, 8) and a.n_classes == 10
    assert len(a.train) + len(a.test) == 1797
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert abs(a.train.x.mean().item()) < 1e-4
    assert abs(a.train.x.std().item() - 1) < 1e-3
    assert set(a.test.y.tolist()) == set(range(10))


def _write_npz(path, n=30, dtype=np.uint8):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 28, 28)).astype(dtype)
    y = rng.integers(0, 10, n).astype(np.uint8)
    np.savez_compressed(path, x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])


def test_keras_npz_loader(tmp_path):
    _write_npz(tmp_path / "mnist.npz")
    d = load("mnist", tmp_path)
    assert d.train.x.shape == (30, 1, 28, 28) and d.test.x.shape == (10, 1, 28, 28)
    assert d.train.x.dtype == torch.float32 and d.train.y.dtype == torch.int64
    # normalised with the standard MNIST statistics
    raw = np.load(tmp_path / "mnist.npz")["x_train"][0, 0, 0] / 255.0
    assert abs(d.train.x[0, 0, 0, 0].item() - (raw - 0.1307) / 0.3081) < 1e-5


def test_data_dir_from_environment(tmp_path, monkeypatch):
    _write_npz(tmp_path / "fashion_mnist.npz")
    monkeypatch.setenv("SOFTDISTILL_DATA", str(tmp_path))
    assert load("fashion_mnist").class_names[9] == "Ankle boot"


def test_missing_file_names_expected_path(tmp_path):
    with pytest.raises(DataError, match=r"(?s)mnist\.npz.*x_train"):
        load("mnist", tmp_path)


def test_no_data_dir_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("SOFTDISTILL_DATA", raising=False)
    with pytest.raises(DataError, match="--data-dir"):
        load("mnist")


def test_truncated_file(tmp_path):
    _write_npz(tmp_path / "mnist.npz")
    data = (tmp_path / "mnist.npz").read_bytes()
    (tmp_path / "mnist.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load("mnist", tmp_path)


def test_unknown_dataset_suggests():
    with pytest.raises(ValueError, match="did you mean 'mnist'"):
        load("minst")


def test_split_checks_lengths():
    with pytest.raises(ValueError, match="3 rows but y has 2"):
        Split(torch.zeros(3, 2), torch.zeros(2))


def test_usps_is_upsampled_to_28x28_with_its_own_statistics(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((12, 16, 16), dtype=np.float32)  # usps.npz: float32 in [0, 1]
    y = np.arange(12, dtype=np.uint8) % 10
    np.savez_compressed(tmp_path / "usps.npz", x_train=x, y_train=y, x_test=x[:4], y_test=y[:4])
    d = load("usps", tmp_path)
    assert d.train.x.shape == (12, 1, 28, 28) and d.test.x.shape == (4, 1, 28, 28)
    assert d.mean == (0.2546,) and d.std == (0.3522,) and d.n_classes == 10
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(x[:1, None]), size=(28, 28), mode="bilinear", align_corners=False
    )
    assert torch.allclose(d.train.x[:1], (expected - 0.2546) / 0.3522, atol=1e-6)
    with pytest.raises(DataError, match="usps.npz"):
        load("usps", tmp_path / "missing")


def test_pixels_read_bitwise_as_the_whole_split_normalised():
    from softdistill.data import Pixels, Split
    from softdistill.distillation import holdout

    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (40, 3, 5, 6), generator=g, dtype=torch.uint8)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    m = torch.tensor(mean).view(1, -1, 1, 1) * 255.0
    s = torch.tensor(std).view(1, -1, 1, 1) * 255.0
    whole = (raw.float() - m) / s  # the former whole-split conversion
    x = Pixels(raw, mean, std)
    assert x.shape == whole.shape and len(x) == 40 and x.dtype == torch.float32 and x.dim() == 4
    idx = torch.tensor([3, 0, 39])
    assert torch.equal(x[idx], whole[idx]) and torch.equal(x[:], whole)
    assert torch.equal(x[5], whole[5]) and torch.equal(x[2:7], whole[2:7])
    assert torch.equal(x[whole[:, 0, 0, 0] > 0], whole[whole[:, 0, 0, 0] > 0])
    assert x[1, 2, 3, 4].item() == whole[1, 2, 3, 4].item()
    assert torch.equal(x.to(dtype=torch.float64)[idx], whole[idx].double())
    # subsets (the held-out split) stay 8-bit
    sub = x.subset(idx)
    assert isinstance(sub, Pixels) and sub.raw is raw and torch.equal(sub[:], whole[idx])
    assert len(sub) == 3 and sub.shape == (3, 3, 5, 6) and torch.equal(sub[-1], whole[39])
    assert torch.equal(sub.subset(torch.tensor([2, 0]))[:], whole[[39, 3]])
    assert torch.equal(sub.subset(slice(1, 3))[:], whole[[0, 39]])
    assert torch.equal(sub[1:, 0, 2], whole[idx][1:, 0, 2])
    train, val = holdout(Split(x, torch.arange(40)), 10, torch.Generator().manual_seed(1))
    assert isinstance(train.x, Pixels) and isinstance(val.x, Pixels)
    assert torch.equal(val.x[:], whole[val.y]) and torch.equal(train.x[:], whole[train.y])
    with pytest.raises(ValueError, match="uint8"):
        Pixels(raw.float(), mean, std)


def test_uint8_image_files_load_as_8bit_pixels(tmp_path):
    from softdistill.data import Pixels

    _write_npz(tmp_path / "mnist.npz")
    d = load("mnist", tmp_path)
    assert isinstance(d.train.x, Pixels) and d.train.x.raw.dtype == torch.uint8
    assert d.train.x.raw.shape == (30, 1, 28, 28)
