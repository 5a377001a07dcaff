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
