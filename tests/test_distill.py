"""The outer loop on tiny data: learning happens, nothing is mutated, failures keep state."""

from __future__ import annotations

import json
import math

import pytest
import torch

import softdistill.distillation as distill_mod
from helpers import blobs
from softdistill import io
from softdistill.config import Config, ConfigError
from softdistill.distillation import DivergenceError, distill
from softdistill.evaluation import evaluate_run, evaluate_synthetic
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


def test_ema_is_returned_and_resumes_exactly(tmp_path):
    cfg, data, model = _setup(outer_steps=6, ema_decay=0.9)
    plain = distill(cfg.replace(ema_decay=0.0), data, model)
    full = distill(cfg, data, model, run_dir=tmp_path / "a")
    assert not torch.equal(plain.syn.x_syn, full.syn.x_syn)
    # the average trails the last iterate: it is closer to the initial set
    init = distill_mod.make_synthetic(
        cfg, data, distill_mod.stream(cfg.seed, "syn"), device="cpu", dtype=torch.float32
    )
    assert (full.syn.x_syn - init.x_syn).norm() < (plain.syn.x_syn - init.x_syn).norm()
    distill(cfg.replace(outer_steps=4), data, model, run_dir=tmp_path / "b")
    resumed = distill(cfg, data, model, run_dir=tmp_path / "b", resume=True)
    for a, b in zip(full.syn.parameters(), resumed.syn.parameters()):
        assert torch.equal(a, b)


def test_holdout_splits_off_disjoint_examples_deterministically():
    data = blobs()
    n = len(data.train)
    train, val = distill_mod.holdout(data.train, 7, torch.Generator().manual_seed(3))
    again, val2 = distill_mod.holdout(data.train, 7, torch.Generator().manual_seed(3))
    assert len(val) == 7 and len(train) == n - 7
    assert torch.equal(val.x, val2.x) and torch.equal(train.x, again.x)
    rows = {tuple(r.tolist()) for r in train.x.flatten(1)}
    assert not any(tuple(r.tolist()) in rows for r in val.x.flatten(1))
    with pytest.raises(ConfigError, match=rf"val_size must be between 1 and {n - 1}"):
        distill_mod.holdout(data.train, n, torch.Generator())


def test_val_size_keeps_the_best_set_on_held_out_examples(tmp_path, monkeypatch):
    cfg, data, model = _setup(outer_steps=12, eval_every=3, val_size=20, lr=0.05)
    seen_batches = []
    real_next = distill_mod.RealBatches.next

    def spy(self, size=None):
        x, y = real_next(self, size)
        seen_batches.append(x)
        return x, y

    monkeypatch.setattr(distill_mod.RealBatches, "next", spy)
    res = distill(cfg, data, model, run_dir=tmp_path)
    records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    vals = {r["step"]: r["val_acc"] for r in records if "val_acc" in r}
    assert sorted(vals) == [3, 6, 9, 12]
    best_step = max(vals, key=lambda s: (vals[s], -s))  # the first of equal bests
    assert res.selected == {
        "step": best_step,
        "val_acc": vals[best_step],
        "val_size": 20,
        "evaluations": len(vals),
    }
    # the returned set scores exactly its recorded val accuracy on the held-out examples
    _, val = distill_mod.holdout(data.train, 20, distill_mod.stream(cfg.seed, "val"))
    assert evaluate_synthetic(model, res.nets, res.syn, val).mean == vals[best_step]
    # held-out examples never reach an outer batch
    held = {tuple(r.tolist()) for r in val.x.flatten(1)}
    assert not any(tuple(r.tolist()) in held for x in seen_batches for r in x.flatten(1))


def test_val_size_selection_resumes_exactly(tmp_path):
    cfg, data, model = _setup(outer_steps=8, eval_every=2, val_size=20, lr=0.05)
    full = distill(cfg, data, model, run_dir=tmp_path / "a")
    distill(cfg.replace(outer_steps=5), data, model, run_dir=tmp_path / "b")
    resumed = distill(cfg, data, model, run_dir=tmp_path / "b", resume=True)
    assert resumed.selected == full.selected
    for a, b in zip(full.syn.parameters(), resumed.syn.parameters()):
        assert torch.equal(a, b)


def test_val_size_needs_eval_every():
    with pytest.raises(ConfigError, match="eval_every"):
        Config(**{**TINY, "val_size": 10}).validate()
    with pytest.raises(ConfigError, match="val_size must be >= 0"):
        Config(**{**TINY, "val_size": -1, "eval_every": 2}).validate()


def test_input_noise_changes_the_gradient_but_is_not_kept(tmp_path):
    # a vanishing outer lr: whatever is left in x_syn after the run is leftover noise
    cfg, data, model = _setup(outer_steps=3, lr=1e-12, input_noise=0.1)
    init = distill_mod.make_synthetic(
        cfg, data, distill_mod.stream(cfg.seed, "syn"), device="cpu", dtype=torch.float32
    )
    noisy = distill(cfg, data, model, run_dir=tmp_path / "noisy")
    assert (noisy.syn.x_syn - init.x_syn).abs().max() < 1e-6
    distill(cfg.replace(input_noise=0.0), data, model, run_dir=tmp_path / "clean")

    def first_loss(d):
        return json.loads((tmp_path / d / "metrics.jsonl").read_text().splitlines()[0])["loss"]

    assert first_loss("noisy") != first_loss("clean")
    with pytest.raises(ConfigError, match="input_noise"):
        Config(**{**TINY, "input_noise": -0.1}).validate()


def test_hypergrad_auto_picks_autograd_for_a_small_graph_with_reverse_gradients(caplog):
    cfg, data, model = _setup(dtype="float64", outer_steps=3)
    syn = distill_mod.make_synthetic(
        cfg, data, distill_mod.stream(0, "syn"), device="cpu", dtype=torch.float64
    )
    model = model.double()
    params = dict(model.named_parameters())
    assert cfg.hypergrad == "auto"
    method, why = distill_mod.choose_hypergrad(cfg, model, syn, params)
    assert method == "autograd" and "MiB <=" in why
    # the same outer steps as reverse, the reference, to 1e-10 (float64)
    with caplog.at_level("INFO", logger="softdistill.distillation"):
        auto = distill(cfg, data, model)
    assert "hypergrad auto: autograd" in caplog.text
    ref = distill(cfg.replace(hypergrad="reverse"), data, model)
    for a, b in zip(auto.syn.parameters(), ref.syn.parameters()):
        assert (a - b).norm() <= 1e-10 * b.norm()
    assert any(not torch.equal(a, b) for a, b in zip(ref.syn.parameters(), syn.parameters()))


def test_hypergrad_auto_falls_back_to_reverse_for_a_large_graph(monkeypatch):
    cfg, data, model = _setup()
    syn = distill_mod.make_synthetic(
        cfg, data, distill_mod.stream(0, "syn"), device="cpu", dtype=torch.float32
    )
    params = dict(model.named_parameters())
    small = distill_mod.choose_hypergrad(cfg, model, syn, params)
    monkeypatch.setattr(distill_mod, "AUTO_GRAPH_BYTES", 1000)
    method, why = distill_mod.choose_hypergrad(cfg, model, syn, params)
    assert small[0] == "autograd" and method == "reverse" and "> 0 MiB" in why
    assert distill_mod.choose_hypergrad(cfg.replace(keep_every=2), model, syn, params)[0] == (
        "reverse"
    )
    as_set = distill_mod.choose_hypergrad(cfg.replace(hypergrad="reverse"), model, syn, params)
    assert as_set == ("reverse", "as configured")


def test_lr_factors_scale_the_outer_lr_of_labels_and_lrs():
    cfg, data, model = _setup(lr=0.02, lr_factor_lrs=0.1, lr_factor_labels=2.0)
    syn = distill_mod.make_synthetic(
        cfg, data, distill_mod.stream(0, "syn"), device="cpu", dtype=torch.float32
    )
    groups = distill_mod.outer_param_groups(cfg, syn)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert lr_of[id(syn.x_syn)] == 0.02
    assert lr_of[id(syn.label_params)] == pytest.approx(0.04)
    assert lr_of[id(syn.raw_lrs)] == pytest.approx(0.002)
    # the defaults: one group, the original method's single lr
    same = cfg.replace(lr_factor_lrs=1.0, lr_factor_labels=1.0)
    assert len(distill_mod.outer_param_groups(same, syn)) == 1
    # a smaller lr for the inner lrs moves them less in the same outer steps
    start = syn.raw_lrs.detach().clone()
    slow = distill(cfg, data, model).syn.raw_lrs.detach()
    fast = distill(cfg.replace(lr_factor_lrs=1.0), data, model).syn.raw_lrs.detach()
    assert 0 < (slow - start).abs().max() < (fast - start).abs().max()
    with pytest.raises(ConfigError, match="lr_factor_lrs must be > 0"):
        Config(lr_factor_lrs=0.0).validate()


def test_outer_chunk_changes_only_rounding_and_defaults_to_256_on_a_cpu(caplog):
    cfg, data, model = _setup(dtype="float64", outer_steps=3, batch_size=40)
    assert distill_mod.outer_chunk(cfg, "cpu") == 256 and distill_mod.outer_chunk(cfg, "cuda") == 0
    assert distill_mod.outer_chunk(cfg.replace(outer_chunk=0), "cpu") == 0
    with caplog.at_level("INFO", logger="softdistill.distillation"):
        chunked = distill(cfg.replace(outer_chunk=16), data, model)
    assert "outer loss in chunks of 16 real examples" in caplog.text
    whole = distill(cfg.replace(outer_chunk=0), data, model)
    for method in ("reverse", "autograd"):
        other = distill(cfg.replace(outer_chunk=16, hypergrad=method), data, model)
        for a, b in zip(other.syn.parameters(), whole.syn.parameters()):
            assert (a - b).norm() <= 1e-10 * b.norm()
    for a, b in zip(chunked.syn.parameters(), whole.syn.parameters()):
        assert (a - b).norm() <= 1e-10 * b.norm()
    with pytest.raises(ConfigError, match="outer_chunk must be >= 0"):
        Config(outer_chunk=-1).validate()


def test_adam_beta1_is_the_outer_momentum():
    cfg, data, model = _setup(outer_steps=4)
    assert cfg.adam_beta1 == 0.5  # the original code's betas (0.5, 0.999)
    a = distill(cfg, data, model).syn.x_syn
    b = distill(cfg.replace(adam_beta1=0.9), data, model).syn.x_syn
    assert not torch.equal(a, b)
    with pytest.raises(ConfigError, match=r"adam_beta1 must be in \[0, 1\)"):
        Config(adam_beta1=1.0).validate()


def test_clip_ratio_clips_large_hypergradients_and_resumes_exactly(tmp_path):
    cfg, data, model = _setup(outer_steps=6, clip_ratio=1.0)
    full = distill(cfg, data, model, run_dir=tmp_path / "a")
    plain = distill(cfg.replace(clip_ratio=0.0), data, model)
    assert not torch.equal(full.syn.x_syn, plain.syn.x_syn)
    records = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["clipped"] == 0 and records[-1]["clipped"] >= 1  # ratio 1: often
    distill(cfg.replace(outer_steps=4), data, model, run_dir=tmp_path / "b")
    resumed = distill(cfg, data, model, run_dir=tmp_path / "b", resume=True)
    for a, b in zip(full.syn.parameters(), resumed.syn.parameters()):
        assert torch.equal(a, b)
    for bad in (-1.0, 0.5):
        with pytest.raises(ConfigError, match="clip_ratio must be 0"):
            Config(clip_ratio=bad).validate()


def test_lr_schedule_cosine_and_warmup_set_the_outer_lr_and_resume_exactly(tmp_path):
    cfg, data, model = _setup(outer_steps=8, lr=0.04, lr_schedule="cosine", warmup_steps=2)
    factors = [distill_mod.outer_lr_factor(cfg, s) for s in range(9)]
    # warm-up (step + 1) / 2 over the first 2 steps, then half a cosine from 1 to 0 over 6
    cos = [0.5 * (1 + math.cos(math.pi * s / 6)) for s in range(7)]
    assert factors == pytest.approx([0.5, 1.0] + cos)
    logged = []
    full = distill(cfg, data, model, run_dir=tmp_path / "a", on_record=logged.append)
    # metrics.jsonl's outer_lr: the lr after the step, i.e. the next step's
    assert [r["outer_lr"] for r in logged] == pytest.approx([0.04 * f for f in factors[1:]])
    # the original schedule is torch's StepLR, as before; its factors in closed form
    step = cfg.replace(lr_schedule="step", warmup_steps=0, decay_every=3, decay_factor=0.5)
    opt = torch.optim.SGD([torch.zeros(1)], lr=1.0)
    assert isinstance(distill_mod.outer_lr_scheduler(step, opt), torch.optim.lr_scheduler.StepLR)
    assert [distill_mod.outer_lr_factor(step, s) for s in range(7)] == [
        1,
        1,
        1,
        0.5,
        0.5,
        0.5,
        0.25,
    ]

    def interrupt(step, info):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(cfg, data, model, run_dir=tmp_path / "b", progress=interrupt)
    resumed = distill(cfg, data, model, run_dir=tmp_path / "b", resume=True)  # from step 4
    for a, b in zip(full.syn.parameters(), resumed.syn.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="lr_schedule must be one of step, cosine"):
        Config(lr_schedule="linear").validate()
    with pytest.raises(ConfigError, match="warmup_steps must be >= 0"):
        Config(warmup_steps=-1).validate()


def test_batch_size_late_switches_the_outer_batch_and_resumes_exactly(tmp_path, monkeypatch):
    cfg, data, model = _setup(outer_steps=6, batch_size=16, batch_size_late=48, batch_late_from=3)
    assert [cfg.batch_size_at(s) for s in range(6)] == [16, 16, 16, 48, 48, 48]
    sizes = []
    real = distill_mod.make_outer_loss

    def spy(cfg, model, x_real, y_real, chunk):
        sizes.append(len(x_real))
        return real(cfg, model, x_real, y_real, chunk)

    monkeypatch.setattr(distill_mod, "make_outer_loss", spy)
    full = distill(cfg, data, model, run_dir=tmp_path / "a")
    assert sizes == [16, 16, 16, 48, 48, 48]
    # a size change continues the pass: 16 + 16 + 48 examples of one permutation
    batches = distill_mod.RealBatches(data.train, 16, torch.Generator().manual_seed(0))
    seen = torch.cat([batches.next(n)[1] for n in (16, 16, 48)])
    assert len(seen) == 80 and batches.pos == 80

    def interrupt(step, info):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(cfg, data, model, run_dir=tmp_path / "b", progress=interrupt)
    resumed = distill(cfg, data, model, run_dir=tmp_path / "b", resume=True)
    for a, b in zip(full.syn.parameters(), resumed.syn.parameters()):
        assert torch.equal(a, b)
    plain = _setup(outer_steps=6, batch_size=16)[0]
    assert [plain.batch_size_at(s) for s in range(6)] == [16] * 6
    with pytest.raises(ConfigError, match="go together"):
        Config(batch_size_late=64).validate()
    with pytest.raises(ConfigError, match="must be >= 0"):
        Config(batch_size_late=-1, batch_late_from=2).validate()


def test_test_every_takes_the_test_accuracy_less_often_and_at_new_best_held_out_scores():
    cfg, data, model = _setup(outer_steps=8, eval_every=1, val_size=20, lr=0.05, init_lr=0.1)
    every = []
    distill(cfg, data, model, on_record=every.append)
    sparse = []
    res = distill(cfg.replace(test_every=4), data, model, on_record=sparse.append)
    assert all("test_acc" in r and "val_acc" in r for r in every)
    assert all("val_acc" in r for r in sparse) and len(sparse) == len(every) == 8
    # the same run (test accuracy is only logged), with the test pass at steps 4 and 8 and at
    # each step whose held-out score beat every earlier one
    best, want = -1.0, []
    for r in every:
        if r["val_acc"] > best or r["step"] % 4 == 0:
            want.append(r["step"])
        best = max(best, r["val_acc"])
    assert 2 <= len(want) < 8  # some test passes saved
    assert [r["step"] for r in sparse if "test_acc" in r] == want
    assert {r["step"]: r["test_acc"] for r in sparse if "test_acc" in r} == {
        r["step"]: r["test_acc"] for r in every if r["step"] in want
    }
    assert res.selected["step"] in want
    for bad in (0, 3):
        with pytest.raises(ConfigError, match="test_every must be a positive multiple"):
            Config(eval_every=2, test_every=bad).validate()


def test_clip_grads_clips_at_the_running_mean_of_clipped_norms():
    stats = {"mean": None, "count": 0}
    g = [torch.ones(4)]
    assert distill_mod.clip_grads(g, 2.0, 2.0, stats) is g and stats == {"mean": 2.0, "count": 0}
    out = distill_mod.clip_grads([torch.full((4,), 3.0)], 10.0, 2.0, stats)  # 10 > 2 x 2: clipped
    assert torch.allclose(out[0], torch.full((4,), 3.0 * 4.0 / 10.0)) and stats["count"] == 1
    assert stats["mean"] == pytest.approx(0.99 * 2.0 + 0.01 * 4.0)  # the clipped norm entered


def test_extra_callbacks_see_every_step_and_can_stop_the_run(tmp_path):
    """distill(callbacks=...): every step, with the metrics' values; a stop is kept in the
    result, checkpointed, and a resumed run continues from there to the uninterrupted result."""
    from softdistill.callbacks import Callback

    class StopAt(Callback):
        def __init__(self, at):
            self.at, self.seen = at, []

        def on_step(self, loop, event):
            self.seen.append((event.step, event.loss, loop.state.step))
            if event.step == self.at:
                event.request_stop("enough")

    cfg, data, model = _setup(outer_steps=6, checkpoint_every=100)
    cb = StopAt(3)
    result = distill(cfg, data, model, run_dir=tmp_path / "a", callbacks=[cb])
    assert result.outer_steps == 3 and [s for s, _, _ in cb.seen] == [1, 2, 3]
    assert all(step == state_step for step, _, state_step in cb.seen)
    records = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in records] == [loss for _, loss, _ in cb.seen]
    assert torch.load(tmp_path / "a" / io.CHECKPOINT, weights_only=False)["step"] == 3
    full = distill(cfg, data, model)
    resumed = distill(cfg, data, model, run_dir=tmp_path / "a", resume=True)
    assert resumed.outer_steps == 6
    for a, b in zip(full.syn.parameters(), resumed.syn.parameters()):
        assert torch.equal(a, b)
