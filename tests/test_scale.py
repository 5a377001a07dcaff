"""The speed-and-memory options in the outer loop: vmap over nets, snapshots, truncation, bf16."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import blobs
from softdistill.config import Config, ConfigError
from softdistill.distillation import distill, hypergrad_options
from softdistill.models import build

TINY = dict(
    dataset="digits",
    arch="convnet",
    arch_args={"depth": 1, "width": 4},
    n_batches=2,
    n_epochs=2,
    outer_steps=3,
    batch_size=32,
    log_every=1,
    checkpoint_every=2,
    init_lr=0.1,
)


def _run(tmp_path=None, **changes):
    cfg = Config(**{**TINY, **changes}).validate()
    data = blobs()
    model = build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)
    return distill(cfg, data, model, run_dir=tmp_path)


def test_batched_nets_equals_the_loop_float64():
    common = dict(nets="random", n_nets=3, dtype="float64")
    loop = _run(**common)
    vmapped = _run(**common, batched_nets=True)
    assert abs(loop.final_loss - vmapped.final_loss) <= 1e-10 * abs(loop.final_loss)
    for a, b in zip(loop.syn.parameters(), vmapped.syn.parameters()):
        assert (a - b).norm() <= 1e-10 * b.norm()


def test_snapshots_do_not_change_the_run():
    a = _run(n_epochs=3, hypergrad="reverse")  # (auto would take autograd: not bitwise)
    b = _run(n_epochs=3, keep_every=4)
    c = _run(n_epochs=3, keep_every=0)  # sqrt(T)
    for pa, pb, pc in zip(a.syn.parameters(), b.syn.parameters(), c.syn.parameters()):
        assert torch.equal(pa, pb) and torch.equal(pa, pc)


def test_random_truncation_logs_its_unroll_length_and_resumes_bitwise(tmp_path):
    common = dict(hypergrad="random_truncated", window=2, n_epochs=4, outer_steps=6)
    full = _run(tmp_path / "a", **common)
    lengths = [
        json.loads(line)["n_steps"]
        for line in (tmp_path / "a/metrics.jsonl").read_text().splitlines()
    ]
    assert len(lengths) == 6 and all(2 <= n <= 8 for n in lengths) and len(set(lengths)) > 1
    _run(tmp_path / "b", **{**common, "outer_steps": 3})
    resumed = distill(
        Config(**{**TINY, **common}).validate(),
        blobs(),
        build("convnet", (1, 8, 8), 3, depth=1, width=4),
        run_dir=tmp_path / "b",
        resume=True,
    )
    for a, b in zip(full.syn.parameters(), resumed.syn.parameters()):
        assert torch.equal(a, b)


def test_bf16_autocast_keeps_float32_master_copies():
    ref = _run(outer_steps=2)
    res = _run(outer_steps=2, amp="bf16")
    for a, b in zip(ref.syn.parameters(), res.syn.parameters()):
        assert b.dtype == torch.float32
        assert torch.isfinite(b).all() and not torch.equal(a, b)  # bf16 did change the numbers
        assert (a - b).norm() <= 0.05 * a.norm()  # ... by little


def test_hypergrad_options():
    g = torch.Generator().manual_seed(0)
    cfg = Config(hypergrad="reverse").validate()
    assert hypergrad_options(cfg, 30, g) == {"method": "reverse", "keep_every": 1}
    cfg = Config(hypergrad="reverse", keep_every=0).validate()
    assert hypergrad_options(cfg, 30, g)["keep_every"] == 6
    cfg = Config(hypergrad="truncated", window=9, keep_every=0).validate()
    assert hypergrad_options(cfg, 30, g) == {
        "method": "truncated",
        "keep_every": 3,
        "window": 9,
    }
    cfg = Config(hypergrad="random_truncated", window=9).validate()
    opts = hypergrad_options(cfg, 30, g)
    assert opts["method"] == "truncated" and 9 <= opts["n_steps"] <= 30
    assert hypergrad_options(Config(hypergrad="autograd"), 30, g) == {"method": "autograd"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hypergrad": "truncated"}, "hypergrad truncated needs window >= 1"),
        ({"hypergrad": "random_truncated", "window": 0}, "needs window >= 1"),
        ({"window": 5}, "window=5 applies to hypergrad truncated or random_truncated"),
        ({"hypergrad": "autograd", "keep_every": 4}, "keep_every=4 needs hypergrad"),
        ({"keep_every": -1}, "keep_every must be >= 0"),
        ({"amp": "fp16"}, "unknown amp 'fp16'"),
        ({"amp": "bf16", "dtype": "float64"}, "amp bf16 needs dtype float32"),
        ({"hypergrad": "rat"}, "unknown hypergrad 'rat'"),
    ],
)
def test_config_rejects_bad_scale_options(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config(**changes).validate()


def test_a_registered_hypergradient_method_is_a_config_value_with_its_own_checks(monkeypatch):
    """One registry entry makes a method: config choices, checks and per-step options follow."""
    from softdistill import hypergrads

    assert hypergrads.choices() == ("auto", "reverse", "autograd", "truncated", "random_truncated")
    assert [m.name for m in hypergrads.HYPERGRAD_METHODS.values() if m.exact] == [
        "reverse",
        "autograd",
    ]
    monkeypatch.setattr(hypergrads, "HYPERGRAD_METHODS", dict(hypergrads.HYPERGRAD_METHODS))
    hypergrads.register(
        hypergrads.HypergradMethod(
            "last_two", "the last two steps", core_method="truncated", exact=False, windowed=True
        )
    )
    with pytest.raises(ValueError, match="registered already"):
        hypergrads.register(hypergrads.HYPERGRAD_METHODS["reverse"])
    cfg = Config(hypergrad="last_two", window=2).validate()
    g = torch.Generator().manual_seed(0)
    assert hypergrad_options(cfg, 6, g) == {"method": "truncated", "keep_every": 1, "window": 2}
    with pytest.raises(ConfigError, match="hypergrad last_two needs window >= 1"):
        Config(hypergrad="last_two").validate()
    with pytest.raises(ConfigError, match="applies to hypergrad truncated, random_truncated or "):
        Config(window=2).validate()


def test_objectives_are_a_registry_with_their_own_checks_and_targets(monkeypatch):
    from softdistill import objectives

    assert objectives.choices() == ("basic", "attack", "adapt")
    y = torch.tensor([0, 1, 2, 1])
    cfg = Config(objective="attack", attack_class=1, target_class=2).validate()
    assert objectives.get("attack").targets(y, cfg).tolist() == [0, 2, 2, 2]
    assert objectives.get("basic").targets(y, cfg) is y
    with pytest.raises(ConfigError, match="nothing to attack"):
        Config(objective="attack", attack_class=1, target_class=1).validate()
    with pytest.raises(ConfigError, match="objective adapt needs nets pretrained"):
        Config(objective="adapt").validate()
    with pytest.raises(ConfigError, match="target_class 9 out of range"):
        Config(objective="attack", target_class=9).validate().check_classes(3)
    monkeypatch.setattr(objectives, "OBJECTIVES", dict(objectives.OBJECTIVES))
    objectives.register(
        objectives.Objective("all_zero", "everything is class 0", targets=lambda y, c: 0 * y)
    )
    assert Config(objective="all_zero").validate().objective == "all_zero"
    with pytest.raises(ConfigError, match="unknown objective 'nope'"):
        Config(objective="nope").validate()
