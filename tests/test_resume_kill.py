"""A run killed with SIGKILL and resumed ends with the uninterrupted run's synthetic set, bitwise.

Real subprocesses (``python -m softdistill distill``), a real ``kill -9`` while the run is between
two checkpoints, then ``--resume``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from softdistill import io

ARGS = [
    "--dataset", "digits",
    "--arch", "convnet", "--arch_args", "depth=1,width=8",
    "--n_batches", "2", "--n_epochs", "3",
    "--nets", "random", "--n_nets", "2", "--batched_nets",
    "--hypergrad", "random_truncated", "--window", "3", "--keep_every", "2",
    "--outer_steps", "400", "--checkpoint_every", "7", "--log_every", "1",
    "--batch_size", "64", "--baseline_lrs", "0.1", "--test_n_nets", "2", "--quiet",
]  # fmt: skip


def _distill(out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "softdistill", "distill", "--out", str(out), *ARGS, *extra]
    log = open(f"{out}.{len(list(out.parent.glob(out.name + '.*.log')))}.log", "w")  # noqa: SIM115
    with log:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def _checkpoint_step(run):
    try:
        return int(io.load_checkpoint(run / io.CHECKPOINT)["step"])
    except io.RunDirError:  # not written yet
        return -1


def _kill_after_checkpoint(proc, run, step):
    """SIGKILL ``proc`` a moment after its checkpoint reaches ``step`` (mid outer step)."""
    deadline = time.monotonic() + 300
    while _checkpoint_step(run) < step:
        assert proc.poll() is None, f"run ended early (exit {proc.returncode}); see its log"
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.02)
    time.sleep(0.13)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (run / io.SYNTHETIC).exists()  # it did not finish
    return _checkpoint_step(run)


def _log(run):
    return [
        {k: m[k] for k in ("step", "loss", "grad_norm", "n_steps")}
        for m in map(json.loads, (run / io.METRICS).read_text().splitlines())
    ]


@pytest.mark.slow
def test_sigkill_then_resume_is_bitwise_equal(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    a = _distill(full)
    first = _kill_after_checkpoint(_distill(killed), killed, 30)
    second = _kill_after_checkpoint(_distill(killed, "--resume"), killed, first + 60)
    assert 30 <= first < second < 400
    c = _distill(killed, "--resume")
    assert a.wait(timeout=900) == 0 and c.wait(timeout=900) == 0

    x, y = load_file(full / io.SYNTHETIC), load_file(killed / io.SYNTHETIC)
    for key in ("x_syn", "label_params", "raw_lrs"):
        assert torch.equal(x[key], y[key]), key
    # the metrics log is the uninterrupted one: same steps, losses and random unroll lengths
    assert _log(killed) == _log(full)
    ev_full, ev_killed = io.read_json(full / io.EVAL), io.read_json(killed / io.EVAL)
    assert ev_killed["distilled"] == ev_full["distilled"]
    assert not list((killed / "checkpoints").glob("*.tmp"))  # no stale partial checkpoint


def test_resume_removes_partial_checkpoint_writes(tmp_path):
    """A kill during a checkpoint write leaves a temporary file; resuming deletes it."""
    from helpers import blobs
    from softdistill.config import Config
    from softdistill.distillation import distill
    from softdistill.models import build

    cfg = Config(arch="mlp", arch_args={"hidden": [8]}, outer_steps=2, batch_size=16).validate()
    data = blobs()
    model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    distill(cfg, data, model, run_dir=tmp_path)
    stale = tmp_path / "checkpoints" / ".last.pt.k9x2.tmp"
    stale.write_bytes(b"half a checkpoint")
    distill(cfg.replace(outer_steps=3), data, model, run_dir=tmp_path, resume=True)
    assert not stale.exists() and io.load_checkpoint(tmp_path / io.CHECKPOINT)["step"] == 3
