"""The outer loop on tiny data: learning happens, nothing is mutated, failures keep state."""

from __future__ import annotations

import json

import pytest
import torch

import softdistill.distillation as distill_mod
from helpers import blobs
from softdistill import io
from softdistill.config import Config
from softdistill.distillation import DivergenceError, distill
from softdistill.evaluation import evaluate_run
from softdistill.models import build

TINY = dict(
    dataset="digits",
    arch="mlp",
    arch_args={"hidden": [16]},
    outer_steps=6,
    batch_size=32,
    log_every=1,
    checkpoint_every=2,
)


def _setup(**changes):
    cfg = Config(**{**TINY, **changes}).validate()
    data = blobs()
    return cfg, data, build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)


def test_distillation_learns_and_leaves_model_unchanged(tmp_path):
    cfg, data, model = _setup(outer_steps=60, init_lr=0.1, lr=0.05)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = distill(cfg, data, model, run_dir=tmp_path)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    metrics = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 60 and metrics[-1]["loss"] < metrics[0]["loss"]
    ev = evaluate_run(model, res.nets, res.syn, data.train, data.test)
    assert ev["distilled"]["mean"] > ev["before"]["mean"] + 0.3
    assert set(ev) == {"distilled", "before", "baselines", "protocol"}
    assert len(ev["baselines"]["random"]["per_net"]) >= 5


def test_random_nets_draw_fresh_inits_each_step(monkeypatch):
    cfg, data, model = _setup(nets="random", n_nets=2, outer_steps=2)
    seen = []
    real = distill_mod.hypergradient

    def spy(model, params0, *a, **kw):
        seen.append(next(iter(params0.values())).clone())
        return real(model, params0, *a, **kw)

    monkeypatch.setattr(distill_mod, "hypergradient", spy)
    distill(cfg, data, model)
    assert len(seen) == 4
    assert all(not torch.equal(seen[i], seen[j]) for i in range(4) for j in range(i))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    cfg, data, model = _setup(outer_steps=10)
    real = distill_mod.hypergradient
    calls = {"n": 0}

    def poisoned(*a, **kw):
        res = real(*a, **kw)
        calls["n"] += 1
        if calls["n"] == 5:
            res.loss = torch.tensor(float("nan"))
        return res

    monkeypatch.setattr(distill_mod, "hypergradient", poisoned)
    with pytest.raises(
        DivergenceError, match=r"(?s)nan.*outer step 4.*checkpoints/last.pt.*lower lr"
    ):
        distill(cfg, data, model, run_dir=tmp_path)
    state = io.load_checkpoint(tmp_path / io.CHECKPOINT)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["syn"].values())


def test_resume_reaches_the_uninterrupted_result(tmp_path):
    cfg, data, model = _setup(outer_steps=6, nets="random")
    full = distill(cfg, data, model, run_dir=tmp_path / "a")
    cfg4 = cfg.replace(outer_steps=4)
    distill(cfg4, data, model, run_dir=tmp_path / "b")
    resumed = distill(cfg, data, model, run_dir=tmp_path / "b", resume=True)
    for a, b in zip(full.syn.parameters(), resumed.syn.parameters()):
        assert torch.equal(a, b)
    steps = [json.loads(l)["step"] for l in (tmp_path / "b/metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_x_init_real_starts_from_training_examples():
    cfg, data, model = _setup(x_init="real", per_class=2)
    syn = distill_mod.make_synthetic(
        cfg, data, torch.Generator().manual_seed(0), device="cpu", dtype=torch.float32
    )
    rows = data.train.x.flatten(1)
    for x, c in zip(syn.x_syn[0], syn.classes):
        match = (rows == x.flatten()).all(1).nonzero().flatten()
        assert len(match) == 1 and data.train.y[match[0]] == c
