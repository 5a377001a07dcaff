"""The Python API: ``sd.distill``, ``sd.evaluate``, ``sd.load``; logging extras."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import softdistill as sd
from softdistill.cli import main
from softdistill.config import ConfigError

TINY = dict(
    arch="mlp",
    arch_args={"hidden": [16]},
    outer_steps=4,
    batch_size=64,
    baseline_lrs=[0.1],
    log_every=1,
)


def test_import_is_light():
    heavy = "('torch', 'numpy', 'matplotlib', 'PIL', 'safetensors')"
    code = f"import sys, softdistill; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_distill_evaluate_load(tmp_path):
    run = sd.distill(out=tmp_path / "run", **TINY)
    assert run.path == tmp_path / "run" and run.config["outer_steps"] == 4
    assert run.syn.x_syn.shape == (1, 10, 1, 8, 8)
    assert [m["step"] for m in run.metrics] == [1, 2, 3, 4]
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert run.eval == saved
    # evaluate again: same nets -> same numbers; overrides change the evaluation
    ev = sd.evaluate(run)
    assert ev["distilled"]["per_net"] == saved["distilled"]["per_net"]
    ev = sd.evaluate(run, nets="random", test_n_nets=3)
    assert len(ev["distilled"]["per_net"]) == 3 and run.eval is ev
    assert json.loads((tmp_path / "run" / "eval.json").read_text()) == saved  # save=False
    loaded = sd.load(tmp_path / "run")
    assert loaded.syn.x_syn.equal(run.syn.x_syn) and loaded.eval == saved


def test_distill_is_the_cli_pipeline(tmp_path):
    """Same config and seed -> the API and the CLI learn the same synthetic set."""
    api_run = sd.distill({"dataset": "digits", **TINY}, out=tmp_path / "api", evaluate=False)
    argv = ["distill", "--out", str(tmp_path / "cli"), "--quiet", "--arch", "mlp"]
    argv += ["--arch_args", "hidden=[16]", "--outer_steps", "4", "--batch_size", "64"]
    argv += ["--baseline_lrs", "0.1", "--log_every", "1"]
    assert main(argv) == 0
    assert api_run.eval is None
    assert api_run.syn.x_syn.equal(sd.load(tmp_path / "cli").syn.x_syn)


def test_distill_errors_before_long_work(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'per_class'"):
        sd.distill(out=tmp_path / "r", per_clas=2)
    with pytest.raises(ConfigError, match="resume cannot change"):
        sd.distill(out=tmp_path / "r0", **{**TINY, "outer_steps": 1})
        sd.distill(out=tmp_path / "r0", resume=True, per_class=2)


def test_readme_example(tmp_path, monkeypatch):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    marker = "<!-- tested by tests/test_api.py::test_readme_example -->"
    block = re.search(re.escape(marker) + r"\s*```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "runs/api-demo/report/index.html").is_file()
    assert (tmp_path / "runs/api-demo/export/synthetic.npz").is_file()


# ----------------------------------------------------------------------------- logging
def test_tensorboard_missing_is_a_clear_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    out = tmp_path / "r"
    argv = ["distill", "--out", str(out), "--tensorboard", "--quiet", "--arch", "mlp"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pip install 'softdistill[tensorboard]'" in err and "Traceback" not in err
    assert not (out / "config.json").exists()  # failed before the long work


def test_tensorboard_logs_the_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    run = sd.distill(out=tmp_path / "r", tensorboard=True, evaluate=False, **TINY)
    events = list((run.path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run.path / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == [1, 2, 3, 4]
    assert (run.path / "metrics.jsonl").is_file()  # always
