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
    with pytest.raises(io.RunDirError, match="is not a softdistill checkpoint"):
        io.load_checkpoint(tmp_path / "bad.pt")


def test_snapshots_are_small_ordered_and_trimmed_on_resume(tmp_path):
    syn = SyntheticSet.create((1, 28, 28), 10, per_class=20, n_batches=3, n_epochs=2)
    for step in (10, 0, 5):
        io.save_snapshot(tmp_path, step, syn)
    snaps = io.load_snapshots(tmp_path)
    assert [s.step for s in snaps] == [0, 5, 10]
    s = snaps[0]
    assert s.x.shape == (io.SNAPSHOT_MAX_EXAMPLES, 1, 28, 28) and s.per_batch == 200
    assert torch.allclose(s.x, syn.x_syn.detach().flatten(0, 1)[:100], atol=1e-2)
    assert s.y_soft.shape == (100, 10) and s.lrs.shape == (6,)
    size = (tmp_path / io.SNAPSHOTS / "0000000.safetensors").stat().st_size
    assert size < 200 * 1024  # float16, first 100 examples only
    # a long text-like sample is capped by the element budget
    big = SyntheticSet.create((400, 300), 2, per_class=10)
    io.save_snapshot(tmp_path / "big", 0, big)
    assert io.load_snapshots(tmp_path / "big")[0].x.shape[0] == 2**18 // (400 * 300)
    io.remove_snapshots_after(tmp_path, 5)
    assert [s.step for s in io.load_snapshots(tmp_path)] == [0, 5]
    (tmp_path / io.SNAPSHOTS / "0000005.safetensors").write_bytes(b"cut")
    assert [s.step for s in io.load_snapshots(tmp_path)] == [0]  # a cut snapshot is skipped


def test_atomic_writes_get_normal_permissions(tmp_path):
    p = io.save_json(tmp_path / "f.json", {"v": 1})
    assert p.stat().st_mode & 0o777 == 0o666 & ~io._UMASK
