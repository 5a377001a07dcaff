from __future__ import annotations

from pathlib import Path

import pytest
import torch

from softdistill import io
from softdistill.core import SyntheticSet


def test_synthetic_roundtrip(tmp_path):
    syn = SyntheticSet.create(
        (1, 4, 4),
        5,
        per_class=2,
        n_batches=2,
        n_epochs=3,
        label_mode="softmax",
        label_classes=[1, 3],
    )
    io.save_synthetic(tmp_path / "s.safetensors", syn, {"dataset": "x", "classes": list("abcde")})
    back, meta = io.load_synthetic(tmp_path / "s.safetensors")
    for a, b in zip(syn.parameters(), back.parameters()):
        assert torch.equal(a, b)
    assert back.n_epochs == 3 and back.label_mode == "softmax"
    assert torch.equal(back.classes, syn.classes)
    assert meta["classes"] == list("abcde") and meta["dataset"] == "x"
    assert not any(p.requires_grad for p in back.parameters())


def test_params_roundtrip(tmp_path):
    nets = [{"a": torch.randn(3), "b.w": torch.randn(2, 2)} for _ in range(3)]
    io.save_params(tmp_path / "p.safetensors", nets)
    back = io.load_params(tmp_path / "p.safetensors")
    assert len(back) == 3
    assert all(torch.equal(n[k], m[k]) for n, m in zip(nets, back) for k in n)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    p = tmp_path / "f.json"
    io.save_json(p, {"v": 1})

    def boom(tmp):
        Path(tmp).write_text("half")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        io.atomic_write(p, boom)
    assert io.read_json(p) == {"v": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["f.json"]


def test_prepare_run_dir_refuses_existing(tmp_path):
    run = tmp_path / "run"
    io.prepare_run_dir(run)
    (run / "config.json").write_text("{}")
    with pytest.raises(io.RunDirError, match="--overwrite"):
        io.prepare_run_dir(run)
    io.prepare_run_dir(run, overwrite=True)
    assert not (run / "config.json").exists()
    io.prepare_run_dir(run, resume=True)


def test_corrupt_synthetic_file(tmp_path):
    (tmp_path / "s.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(io.RunDirError, match="corrupt or truncated"):
        io.load_synthetic(tmp_path / "s.safetensors")


def test_checkpoint_loading_is_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"x": Evil()}, tmp_path / "bad.pt")
    with pytest.raises(io.RunDirError, match="cannot read checkpoint"):
        io.load_checkpoint(tmp_path / "bad.pt")
