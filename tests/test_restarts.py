"""restarts: several starts of the synthetic set, the one best on held-out data continued."""

from __future__ import annotations

import json

import pytest
import torch

import softdistill.distillation as distill_mod
from helpers import blobs
from softdistill.cli import main
from softdistill.config import Config, ConfigError
from softdistill.distillation import distill
from softdistill.models import build
from softdistill.seeds import stream

TINY = dict(
    dataset="digits",
    arch="mlp",
    arch_args={"hidden": [16]},
    batch_size=32,
    log_every=1,
    checkpoint_every=2,
    outer_steps=8,
    eval_every=2,
    val_size=20,
    lr=0.05,
    restarts=3,
    restart_steps=4,
)


def _setup(**changes):
    cfg = Config(**{**TINY, **changes}).validate()
    data = blobs()
    return cfg, data, build(cfg.arch, data.sample_shape, data.n_classes, **cfg.arch_args)


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_restarts_continue_the_start_best_on_held_out_data(tmp_path, monkeypatch):
    cfg, data, model = _setup(eval_every=1)  # held out at steps 3 and 4 count for the choice
    res = distill(cfg, data, model, run_dir=tmp_path / "r")
    starts = _records(tmp_path / "r" / "restarts.jsonl")
    assert sorted({r["start"] for r in starts}) == [0, 1, 2]
    assert max(r["step"] for r in starts) == 4  # each start ran restart_steps steps
    # a start's score: the mean of its held-out accuracies after step restart_steps / 2 = 2
    assert {r["step"] for r in starts if "val_acc" in r} == {1, 2, 3, 4}
    at_choice = [
        sum(vals) / len(vals)
        for vals in (
            [r["val_acc"] for r in starts if r["start"] == k and r["step"] > 2 and "val_acc" in r]
            for k in range(3)
        )
    ]
    chosen = res.selected["restarts"]["chosen"]
    assert res.selected["restarts"] == {"chosen": chosen, "val_acc": at_choice, "steps": 4}
    assert at_choice[chosen] == max(at_choice) and at_choice.index(max(at_choice)) == chosen
    assert chosen > 0  # in this tiny setting a further start wins, so the check below means it
    # the run's metrics are the kept start's lines, then its continuation to outer_steps
    metrics = _records(tmp_path / "r" / "metrics.jsonl")
    kept = [r for r in starts if r["start"] == chosen]
    assert [r["loss"] for r in metrics[: len(kept)]] == [r["loss"] for r in kept]
    assert [r["step"] for r in metrics] == list(range(1, 9))
    assert all("start" not in r for r in metrics)
    assert not (tmp_path / "r" / "restarts").exists()  # the starts' snapshots: kept or removed
    assert (tmp_path / "r" / "snapshots" / "0000000.safetensors").is_file()
    # the kept start is exactly a one-start run from that start's init
    real_stream = distill_mod.stream

    def swapped(seed, name, key=None):
        if name == "syn":
            return real_stream(seed, "restart_syn", chosen)
        return real_stream(seed, name, key)

    monkeypatch.setattr(distill_mod, "stream", swapped)
    one = distill(cfg.replace(restarts=1, restart_steps=0), data, model, run_dir=tmp_path / "one")
    for a, b in zip(res.syn.parameters(), one.syn.parameters()):
        assert torch.equal(a, b)
    assert res.selected["step"] == one.selected["step"]


def test_restart_zero_is_the_runs_own_start(tmp_path):
    """Start 0's steps are the steps of the same run without restarts."""
    cfg, data, model = _setup()
    distill(cfg, data, model, run_dir=tmp_path / "r")
    distill(cfg.replace(restarts=1, restart_steps=0), data, model, run_dir=tmp_path / "one")
    first = [r for r in _records(tmp_path / "r" / "restarts.jsonl") if r["start"] == 0]
    plain = _records(tmp_path / "one" / "metrics.jsonl")[: len(first)]
    assert [r["loss"] for r in first] == [r["loss"] for r in plain]
    assert stream(0, "restart_syn", 1).initial_seed() != stream(0, "syn").initial_seed()


def test_restarts_resume_after_and_before_the_choice(tmp_path):
    cfg, data, model = _setup()
    full = distill(cfg, data, model, run_dir=tmp_path / "a")
    # stopped after the choice: the checkpoint continues the kept start
    distill(cfg.replace(outer_steps=6), data, model, run_dir=tmp_path / "b")
    after = distill(cfg, data, model, run_dir=tmp_path / "b", resume=True)
    # stopped before the choice (no checkpoint of the run yet): every start runs again
    (tmp_path / "a" / "checkpoints" / "last.pt").unlink()
    before = distill(cfg, data, model, run_dir=tmp_path / "a", resume=True)
    for res in (after, before):
        assert res.selected == full.selected
        for a, b in zip(full.syn.parameters(), res.syn.parameters()):
            assert torch.equal(a, b)
    steps = [r["step"] for r in _records(tmp_path / "b" / "metrics.jsonl")]
    assert steps == list(range(1, 9))
    assert full.seconds_per_step == pytest.approx(full.seconds / (8 + 2 * 4))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(restarts=0), "restarts must be >= 1"),
        (dict(val_size=0), "set val_size > 0"),
        (dict(restart_steps=0), "restart_steps"),
        (dict(restart_steps=8), "between 1 and outer_steps - 1 = 7"),
        (dict(restart_steps=3), "multiple of eval_every 2"),
    ],
)
def test_restarts_settings_are_checked(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config(**{**TINY, **changes}).validate()


def test_restarts_are_reported_by_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--arch", "mlp", "--arch_args", "hidden=[16]", "--batch_size", "64", "--quiet"]
    flags += ["--baseline_lrs", "0.1", "--outer_steps", "6", "--eval_every", "2"]
    flags += ["--val_size", "50", "--restarts", "2", "--restart_steps", "2"]
    assert main(["distill", "--out", str(out), *flags]) == 0
    sel = json.loads((out / "eval.json").read_text())["protocol"]["selected"]
    assert sel["restarts"]["steps"] == 2 and len(sel["restarts"]["val_acc"]) == 2
    printed = capsys.readouterr().out
    assert (
        f"continued start {sel['restarts']['chosen'] + 1} of 2 (mean held out over outer steps 2-2"
        in printed
    )
    run = json.loads((out / "eval.json").read_text())["protocol"]
    assert run["outer_steps"] == 6
    assert "6 outer steps (+2 of the starts not continued) in" in printed


def test_early_stop_waits_for_the_kept_start():
    """stop_at_val_acc is off while the starts run and on for the kept start's loop."""
    cfg, data, model = _setup(stop_at_val_acc=0.01)
    res = distill(cfg, data, model)
    assert res.outer_steps == 6  # the first evaluation after the choice at step 4
    assert res.selected["stopped_early"] == 6 and res.selected["restarts"]["steps"] == 4
