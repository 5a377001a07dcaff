"""Long phases report progress (softdistill.progress); the CLI shows it without mangling logs."""

from __future__ import annotations

import io as stdio
import logging

import pytest

from softdistill import api, progress
from softdistill.cli import common


class Recorder:
    def __init__(self):
        self.tasks = []

    def __call__(self, desc, total, unit):
        rec = {"desc": desc, "total": total, "unit": unit, "done": 0, "closed": False}
        self.tasks.append(rec)

        class T:
            def update(self, n=1):
                rec["done"] += n

            def close(self):
                rec["closed"] = True

        return T()


@pytest.fixture
def recorder():
    rec = Recorder()
    previous = progress.set_reporter(rec)
    yield rec
    progress.set_reporter(previous)


def test_evaluation_and_baselines_report_every_unit(tmp_path, recorder):
    api.distill(
        dataset="digits",
        arch="mlp",
        arch_args={"hidden": [16]},
        outer_steps=3,
        batch_size=64,
        baselines=["random", "kmeans"],
        baseline_lrs=[0.01, 0.1],
        baseline_draws=4,
        out=tmp_path / "run",
    )
    descs = [t["desc"] for t in recorder.tasks]
    assert descs == ["evaluate: the distilled set", "baseline random", "baseline kmeans"]
    for t in recorder.tasks:
        assert t["closed"] and t["done"] == t["total"] > 0, t
    # random: 2 grid lrs + 5 scored draws (at least as many as kept) + 5 kept sets (>= 5
    # trainings on the one fixed net)
    assert recorder.tasks[1]["total"] == 2 + 5 + 5


def test_log_lines_every_tenth_after_two_seconds(monkeypatch, caplog):
    clock = iter(range(0, 1000, 1))
    monkeypatch.setattr(common.time, "perf_counter", lambda: float(next(clock)))
    with caplog.at_level(logging.INFO, logger="softdistill"):
        t = common._LogTask("baseline random", 20, "set")
        for _ in range(20):
            t.update()
        t.close()
    lines = [r.getMessage() for r in caplog.records]
    # the clock ticks 1 s a call: nothing before 2 s, then one line every 2 of 20 sets
    assert lines[0].startswith("baseline random: 3/20 sets, 3s, ETA") and "ETA" in lines[0]
    assert len(lines) == 10 and lines[-1].startswith("baseline random: done in")


def test_a_log_line_never_joins_a_progress_bar(monkeypatch):
    from tqdm import tqdm

    err = stdio.StringIO()
    monkeypatch.setattr(common.sys, "stderr", err)
    handler = common._TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("softdistill.test_bar")
    logger.addHandler(handler)
    logger.propagate = False
    bar = tqdm(total=10, desc="distill", file=err, dynamic_ncols=False, ncols=60)
    bar.update(3)
    logger.warning("evaluating")
    bar.close()
    text = err.getvalue()
    at = text.index("evaluating")
    assert at == 0 or text[at - 1] in "\r\n"  # the line starts at the left margin
    assert text[at + len("evaluating")] == "\n"  # and ends there: the bar is redrawn below


def test_outer_step_progress_of_a_resumed_run_starts_at_its_first_step(monkeypatch, caplog):
    """start None (a resume): the step before the first one reported, so the rate counts only
    the steps of this process; the checkpoint is not read for it."""
    monkeypatch.setattr(common.sys, "stderr", stdio.StringIO())  # not a terminal: log lines
    bar = common.Progress(100, None, enabled=True)
    with caplog.at_level(logging.INFO, logger=common.log.name):
        bar(61, {"loss": 0.5})
    assert bar.start == 60 and "outer step 61/100  loss 0.5000" in caplog.text
    assert bar.next_log == 61 + 10
