"""Distributed distillation: 2 gloo processes give the 1-process result over the same nets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

import distributed_worker
from helpers import blobs, make_pool
from softdistill.cli import main
from softdistill.distillation import make_synthetic
from softdistill.distributed import all_reduce_mean, rank_world
from softdistill.seeds import stream


def _same_synthetic(a, b):
    one, two = load_file(a / "synthetic.safetensors"), load_file(b / "synthetic.safetensors")
    for key in ("x_syn", "label_params", "raw_lrs"):
        torch.testing.assert_close(two[key], one[key], rtol=1e-9, atol=1e-12)


def test_two_processes_match_one_process(tmp_path):
    """CPU, gloo, 2 processes: fixed inits, random inits and a pool (4 nets, 2 per rank)."""
    pool = tmp_path / "pool"
    make_pool(pool, blobs(), n_nets=4, epochs=1)
    reference = distributed_worker.run_cases(pool)
    mp.spawn(
        distributed_worker.worker,
        args=(2, str(tmp_path / "init"), str(pool), str(tmp_path)),
        nprocs=2,
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    # restarts: a rank continuing another start than rank 0 would average the gradients of two
    # different sets, and rank 0's kept set would differ from the one-process run
    for name in ("fixed", "random", "pool", "heldout", "restarts"):
        for a, b in zip(ranks[0][name], reference[name]):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for name in ("fixed", "random", "pool"):
        # every rank took the same Adam steps: bitwise the same synthetic set (with val_size
        # rank 0 returns the set it kept, the others their last one)
        assert all(torch.equal(a, b) for a, b in zip(ranks[0][name], ranks[1][name]))
    # the held-out case stopped at its first evaluation (stop_at_val_acc), on both ranks
    assert ranks[0]["heldout_steps"] == ranks[1]["heldout_steps"] == reference["heldout_steps"] == 2
    # ... and the outer steps did move the set: the runs are not equal by being untouched
    cfg = distributed_worker.cases(pool)["fixed"]
    syn0 = make_synthetic(cfg, blobs(), stream(cfg.seed, "syn"), device="cpu", dtype=torch.float64)
    for name in ("fixed", "random", "pool"):
        assert all((a - b).abs().max() > 1e-4 for a, b in zip(syn0.parameters(), reference[name]))
    for r, rank in enumerate(ranks):
        assert "differs across the 2 processes" in rank["mismatch"], r
        assert (
            "lr: rank 0 0.05, rank 1 0.07" in rank["mismatch"] and "device" not in rank["mismatch"]
        )


def test_all_reduce_is_a_no_op_in_one_process():
    loss, grads = torch.tensor(2.0), [torch.ones(3)]
    assert rank_world() == (0, 1)
    out_loss, out_grads = all_reduce_mean(loss, grads, 1, 1)
    assert out_loss is loss and out_grads[0] is grads[0]


@pytest.mark.slow
def test_torchrun_cli_matches_one_process(tmp_path):
    """The real launcher: `torchrun --nproc-per-node 2 -m softdistill distill ...` on CPU."""
    args = ["--dataset", "digits", "--arch", "mlp", "--arch_args", "hidden=[8]"]
    args += ["--nets", "random", "--n_nets", "2", "--outer_steps", "2", "--batch_size", "64"]
    args += ["--dtype", "float64", "--baselines", "--test_n_nets", "1", "--quiet"]
    assert main(["distill", *args, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "softdistill", "distill", *args, "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _same_synthetic(tmp_path / "one", tmp_path / "two")
    assert proc.stdout.count("outer steps in") == 1  # only rank 0 reports
    # `softdistill train` under torchrun: rank r trains nets r, r+2, ...; the same pool as 1 process
    args = ["--dataset", "digits", "--arch", "mlp", "--arch_args", "hidden=[8]", "--n_nets", "3"]
    args += ["--epochs", "1", "--batch_size", "256", "--quiet"]
    assert main(["train", *args, "--out", str(tmp_path / "pool1")]) == 0
    cmd = cmd[: cmd.index("softdistill") + 1] + ["train", *args, "--out", str(tmp_path / "pool2")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m1 = json.loads((tmp_path / "pool1/manifest.json").read_text())
    m2 = json.loads((tmp_path / "pool2/manifest.json").read_text())
    assert [n["test_acc"] for n in m2["nets"]] == [n["test_acc"] for n in m1["nets"]]
    for i in range(3):
        w1, w2 = (load_file(tmp_path / p / f"net_{i:04d}.safetensors") for p in ("pool1", "pool2"))
        assert all(torch.equal(w1[k], w2[k]) for k in w1)
