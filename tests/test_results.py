"""Typed eval.json (softdistill.results): what a run writes reads back unchanged."""

from __future__ import annotations

import json

from softdistill.cli import main
from softdistill.cli.common import format_summary
from softdistill.results import EvalReport, Protocol, Score, Selection, read_eval

RUN = ["--arch", "mlp", "--arch_args", "hidden=[16]", "--outer_steps", "6", "--batch_size", "64"]
RUN += ["--eval_every", "2", "--val_size", "100", "--test_n_nets", "2", "--quiet"]


def test_a_runs_eval_json_round_trips_and_reads_typed(tmp_path):
    out = tmp_path / "run"
    assert main(["distill", "--out", str(out), "--nets", "random", *RUN]) == 0
    raw = json.loads((out / "eval.json").read_text())
    rep = read_eval(out)
    assert rep.to_dict() == raw  # nothing lost or added
    assert rep.distilled.mean == raw["distilled"]["mean"] and len(rep.distilled.per_net) == 2
    assert rep.confusion == raw["distilled"]["confusion"]
    assert set(rep.baselines) == set(raw["baselines"]) and rep.baselines["knn"].is_knn
    assert rep.protocol.n_steps == raw["protocol"]["n_steps"]
    assert rep.protocol.get("outer_steps") == 6 and rep.protocol.get("nope", "-") == "-"
    assert rep.selected == Selection(**raw["protocol"]["selected"])
    name, best = rep.best_baseline()
    assert best.mean == max(b["mean"] for b in raw["baselines"].values())
    assert format_summary(rep) == format_summary(raw)


def test_old_and_partial_files_load_and_unknown_entries_are_kept():
    old = {"distilled": {"mean": 0.5, "per_net": [0.5]}, "protocol": {"n_steps": 3}, "new": 1}
    rep = EvalReport.from_dict(old)
    assert rep.before is None and rep.baselines == {} and rep.selected is None
    assert rep.distilled.std == 0.0 and rep.protocol == Protocol(n_steps=3)
    assert rep.to_dict()["new"] == 1  # an entry of a later release survives a rewrite
    assert "test accuracy before training: not measured" in format_summary(rep)


def test_score_cells_say_how_many_nets_or_sets():
    assert Score(0.9617, 0.0032, [0.96, 0.9634]).cell() == "96.17 ± 0.32 (2)"
    assert Score(0.9617, 0.0, [0.9617]).cell("%") == "96.17% (1 net)"
    assert Score(0.5, 0.0, [0.5], {"k": 1}).cell() == "50.00 (1 set)"
    assert Score(0.5, extra={"lr": 0.1}).lr == 0.1 and Score(0.5, extra={"lr": "x"}).lr is None
