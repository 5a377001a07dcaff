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


def test_distill_errors_before_long_work(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'per_class'"):
        sd.distill(out=tmp_path / "r", per_clas=2)
    run = sd.distill(out=tmp_path / "r0", evaluate=False, **{**TINY, "outer_steps": 1})
    assert run.eval is None and not (run.path / "eval.json").exists()
    with pytest.raises(ConfigError, match="resume cannot change"):
        sd.distill(out=tmp_path / "r0", resume=True, per_class=2)
    run = sd.distill(out=tmp_path / "r0", resume=True, evaluate=False, outer_steps=2)
    assert [m["step"] for m in run.metrics] == [1, 2]


def test_readme_example_and_api_semantics(tmp_path, monkeypatch):
    """The README's Python example runs as written; then what it promises holds."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    marker = "<!-- tested by tests/test_api.py::test_readme_example -->"
    block = re.search(re.escape(marker) + r"\s*```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    path = tmp_path / "runs/api-demo"
    assert (path / "report/index.html").is_file() and (path / "export/synthetic.npz").is_file()

    run = sd.load(path)
    assert run.path == path and run.config["outer_steps"] == 10
    assert run.syn.x_syn.shape == (1, 10, 1, 8, 8)
    assert [m["step"] for m in run.metrics] == [1, 10]
    assert run.eval == json.loads((path / "eval.json").read_text())
    saved = run.eval
    # evaluate again: same nets -> same numbers; overrides change the evaluation
    ev = sd.evaluate(run, baseline_lrs=[0.1])
    assert ev["distilled"]["per_net"] == saved["distilled"]["per_net"] and run.eval is ev
    ev = sd.evaluate(run, nets="random", test_n_nets=3, baseline_lrs=[0.1])
    assert len(ev["distilled"]["per_net"]) == 3
    assert json.loads((path / "eval.json").read_text()) == saved  # save=False
    sd.evaluate(path, save=True, baseline_lrs=[0.1])
    assert json.loads((path / "eval.json").read_text())["baselines"]["random"]["lr"] == 0.1


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


def test_distill_takes_callbacks_of_ones_own(tmp_path):
    """sd.distill(callbacks=[...]): a callback sees every step and may end the run; the run
    folder then holds the set of that step, evaluated."""
    from softdistill.callbacks import Callback

    class StopAt(Callback):
        def __init__(self):
            self.steps = []

        def on_step(self, loop, event):
            self.steps.append(event.step)
            if event.step == 4:
                event.request_stop("enough")

    cb = StopAt()
    run = sd.distill(
        dataset="digits", arch="mlp", outer_steps=9, baseline_lrs=[0.1], out=str(tmp_path / "r"),
        callbacks=[cb],
    )  # fmt: skip
    assert cb.steps == [1, 2, 3, 4]
    assert run.meta["outer_steps"] == 4 and run.eval["distilled"]["mean"] > 0


def test_resume_with_the_config_file_of_a_run_counted_in_passes(tmp_path):
    """A config in passes (``outer_epochs``/``decay_epochs``, as the text presets) resumes with
    its own file: the saved config holds the steps the passes became, and the file's passes are
    compared as steps once the data says how many a pass is; a real change is still refused."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "arch: mlp\narch_args: {hidden: [16]}\nbatch_size: 512\nbaseline_lrs: [0.1]\n"
        "outer_epochs: 1\ndecay_epochs: 1\ndecay_every: 250\n"
    )
    first = sd.distill(path, out=tmp_path / "r", evaluate=False)
    per_pass = first.config["outer_steps"]
    assert first.config["decay_every"] == per_pass and first.config["decay_epochs"] is None
    run = sd.distill(path, out=tmp_path / "r", resume=True, evaluate=False, outer_epochs=2)
    assert run.metrics[-1]["step"] == 2 * per_pass
    assert run.config["decay_every"] == per_pass
    with pytest.raises(ConfigError, match=r"resume cannot change \['decay_every'\]"):
        sd.distill(path, out=tmp_path / "r", resume=True, evaluate=False, decay_epochs=2)
    argv = ["distill", "--config", str(path), "--out", str(tmp_path / "r"), "--resume"]
    assert main([*argv, "--outer_epochs", "3", "--quiet"]) == 0
    assert sd.load(tmp_path / "r").metrics[-1]["step"] == 3 * per_pass
