"""End-to-end through ``cli.main`` into tmp_path, and the CLI's error contract."""

from __future__ import annotations

import json
import os
import re

import pytest
import torch

from softdistill import io
from softdistill.cli import main

FAST = [
    "--arch",
    "mlp",
    "--arch_args",
    "hidden=[16]",
    "--outer_steps",
    "5",
    "--batch_size",
    "64",
    "--quiet",
    "--baseline_lrs",
    "0.1",
]


def test_distill_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["distill", "--out", str(out), *FAST]) == 0
    for name in (
        "config.json",
        "synthetic.safetensors",
        "init.safetensors",
        "metrics.jsonl",
        "eval.json",
        "checkpoints/last.pt",
        "report/synthetic.png",
    ):
        assert (out / name).is_file(), name
    ev = json.loads((out / "eval.json").read_text())
    for key in ("distilled", "before"):
        assert 0 <= ev[key]["mean"] <= 1 and len(ev[key]["per_net"]) == 1
    assert 0 <= ev["baselines"]["random"]["mean"] <= 1
    assert ev["protocol"]["n_steps"] == 3 and ev["protocol"]["seconds_per_step"] > 0
    metrics = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in metrics)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["arch_args"] == {"hidden": [16]} and cfg["config_version"] == 1
    printed = capsys.readouterr().out
    assert "distilled (3 steps)" in printed and "baseline random" in printed
    # softdistill show of an image run: the lrs, each example's top labels, the grid's path
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("learned learning rates: ") and "batch 0, example 9: " in shown
    assert f"images: {out / 'report' / 'synthetic.png'}" in shown

    # re-evaluate the finished run: same distilled accuracy on the same fixed init
    assert main(["evaluate", str(out), "--quiet"]) == 0
    ev2 = json.loads((out / "eval.json").read_text())
    assert ev2["distilled"]["per_net"] == ev["distilled"]["per_net"]
    assert ev2["protocol"]["seconds_per_step"] == ev["protocol"]["seconds_per_step"]


def test_config_file_and_original_flag_aliases(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("per_class: 2\nn_epochs: 1\ninit_lr: 0.05\n")
    out = tmp_path / "run"
    argv = [
        "distill",
        "--config",
        str(cfg_file),
        "--out",
        str(out),
        *FAST,
        "--distill_steps",
        "2",
        "--train_nets_type",
        "unknown_init",
        "--static_labels",
        "--num_distill_classes",
        "3",
        "--test_n_nets",
        "2",
    ]
    assert main(argv) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["per_class"], cfg["n_batches"], cfg["n_epochs"]) == (2, 2, 1)
    assert cfg["nets"] == "random" and cfg["learn_labels"] is False
    assert cfg["n_label_classes"] == 3 and cfg["init_lr"] == 0.05
    run = io.load_run(out)
    assert run.syn.x_syn.shape == (2, 6, 1, 8, 8)
    assert torch.equal(run.syn.y_soft[0], torch.eye(10)[[0, 0, 1, 1, 2, 2]])  # static labels
    assert run.init_params is None
    assert len(run.eval["distilled"]["per_net"]) == 2


def test_val_size_selection_is_reported_and_kept_by_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    flags = [*FAST, "--outer_steps", "6", "--eval_every", "2", "--val_size", "50"]
    assert main(["distill", "--out", str(out), *flags]) == 0
    sel = json.loads((out / "eval.json").read_text())["protocol"]["selected"]
    assert sel["step"] in (2, 4, 6) and sel["val_size"] == 50
    assert f"the set of outer step {sel['step']}, best on 50 held-out" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--quiet"]) == 0
    assert json.loads((out / "eval.json").read_text())["protocol"]["selected"] == sel


def test_resume_continues_a_run(tmp_path):
    out = tmp_path / "run"
    assert main(["distill", "--out", str(out), *FAST]) == 0
    assert main(["distill", "--out", str(out), "--resume", "--outer_steps", "8", "--quiet"]) == 0
    steps = [json.loads(l)["step"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 8
    assert main(["distill", "--out", str(out), "--resume", "--per_class", "3", "--quiet"]) == 2


@pytest.mark.parametrize(
    "argv,code,message",
    [
        (["distill", "--arch", "lenett"], 2, "did you mean 'lenet'"),
        (["distill", "--arch", "lenet"], 2, "28x28 or 32x32.*convnet"),
        (["distill", "--per_class", "0"], 2, "per_class must be a positive integer"),
        (["distill", "--init_lr", "-1"], 2, "init_lr must be positive"),
        (["distill", "--init_labels", "3", "12"], 2, r"init_labels \[12\] out of range"),
        (["distill", "--dataset", "mnist", "--data-dir", "/nonexistent"], 1, "mnist.npz"),
        (["distill", "--dataset", "minst"], 2, "did you mean 'mnist'"),
        (["distill", "--config", "/nonexistent.yaml"], 2, "config file not found"),
        (["evaluate", "/nonexistent-run"], 1, "run folder not found"),
        # unknown names: commands, options, option values
        (["distil"], 2, "invalid choice: 'distil'.*did you mean 'distill'"),
        (["distill", "--per_clsas", "2"], 2, "unknown option --per_clsas.*'--per_class'"),
        (["distill", "--init", "xavierr"], 2, "unknown init 'xavierr'.*did you mean 'xavier'"),
        (["distill", "--hypergrad", "revers"], 2, "did you mean 'reverse'"),
        (["distill", "--baselines", "randm"], 2, "did you mean 'random'"),
        # image sizes an architecture cannot take
        (["distill", "--arch", "alexcifarnet"], 2, "32x32.*use arch 'convnet'"),
        # init_labels out of range / of the wrong length
        (
            ["distill", "--n_label_classes", "3", "--init_labels", "0", "1"],
            2,
            r"init_labels \[0, 1\] has 2 entries but n_label_classes is 3",
        ),
        (["distill", "--init_labels", "1", "1"], 2, "repeats a class"),
        # non-positive learning rates and counts
        (["distill", "--lr", "0"], 2, "lr must be positive, got 0"),
        (["distill", "--baseline_lrs", "-0.1"], 2, r"baseline_lrs must be positive.*-0.1"),
        (["distill", "--outer_steps", "0"], 2, "outer_steps must be a positive integer, got 0"),
        (["distill", "--n_batches", "-1"], 2, "n_batches must be a positive integer, got -1"),
        (["distill", "--n_epochs", "0"], 2, "n_epochs must be a positive integer"),
        (["distill", "--snapshot_every", "-1"], 2, "snapshot_every must be >= 0"),
        (["report", "/nonexistent-run"], 1, "run folder not found"),
        # values an option does not take: what it takes, in one line
        (["distill", "--lr", "fast"], 2, "--lr takes a number, got 'fast'"),
        (["distill", "--batch_size", "3.5"], 2, "--batch_size takes an integer, got '3.5'"),
        (["distill", "--learn_labels", "maybe"], 2, "unexpected value 'maybe'"),
        # did-you-mean never offers the word typed; the options are the command's own
        (["distill", "--epoch", "3"], 2, r"unknown option --epoch \(did you mean '--n_epochs'"),
    ],
)
def test_errors_exit_codes_and_messages(tmp_path, capsys, argv, code, message):
    argv = [*argv, "--out", str(tmp_path / "r")] if argv[0] == "distill" else argv
    assert main([*argv, "--quiet"]) == code
    err = capsys.readouterr().err
    assert "softdistill: error:" in err and "Traceback" not in err
    assert re.search(message, err, re.I | re.S)
    assert len(err.strip().splitlines()) <= 2  # the message (+ where help is), no usage block
    m = re.search(r"unknown option (\S+) \(did you mean '([^']*)'", err)
    assert m is None or m.group(1) != m.group(2)


@pytest.mark.parametrize(
    "text,message",
    [
        ('init_lr: "fast"\n', "init_lr in .* takes a number, got 'fast'"),
        ("batch_size: 3.5\n", "batch_size in .* takes an integer, got 3.5"),
    ],
)
def test_config_file_values_of_the_wrong_type(tmp_path, capsys, text, message):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    assert main(["distill", "--config", str(f), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not (tmp_path / "r").exists()


def test_yaml_float_written_as_1e_minus_3_is_accepted(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("lr: 1e-3\n")
    out = tmp_path / "r"
    assert main(["distill", "--config", str(f), "--out", str(out), *FAST]) == 0
    assert json.loads((out / "config.json").read_text())["lr"] == 0.001


def test_existing_run_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "eval.json").write_text("{}")
    assert main(["distill", "--out", str(out), *FAST]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "eval.json").read_text() == "{}"  # nothing lost
    assert main(["distill", "--out", str(out), "--overwrite", *FAST]) == 0


def test_debug_shows_traceback(tmp_path):
    with pytest.raises(Exception, match="did you mean"):
        main(["distill", "--arch", "lenett", "--debug", "--out", str(tmp_path / "r")])


def test_help_lists_subcommands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("distill", "evaluate", "report", "export"))


def test_config_flags_have_help_from_config_comments(capsys):
    assert main(["distill", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "examples per label class per batch (default: 1)" in out
    # a comment continued on the next line, and one of a later field
    assert "or file:PATH (.npy/.pt/.txt) (default: onehot)" in out
    assert "the report's animation); None: about 25 per run, 0: off (default: None)" in out


def _run_cli(argv, capsys):
    code = main([*argv, "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_unknown_config_file_key_suggests_nearest(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("per_clas: 2\n")
    code, err = _run_cli(["distill", "--config", str(cfg), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "unknown key 'per_clas'" in err and "did you mean 'per_class'" in err


@pytest.mark.parametrize(
    "content,message",
    [
        (b"PK\x03\x04 cut short", "corrupt or truncated"),
        (None, r"lacks arrays \['x_test', 'y_test'\]"),
    ],
)
def test_corrupt_or_incomplete_data_file(tmp_path, capsys, content, message):
    data = tmp_path / "data"
    data.mkdir()
    if content is None:  # a valid npz without the test split
        import numpy as np

        np.savez(data / "mnist.npz", x_train=np.zeros((2, 28, 28)), y_train=np.zeros(2))
    else:
        (data / "mnist.npz").write_bytes(content)
    argv = ["distill", "--dataset", "mnist", "--data-dir", str(data), "--out", str(tmp_path / "r")]
    code, err = _run_cli(argv, capsys)
    assert code == 1 and re.search(message, err)
    assert str(data / "mnist.npz") in err


def test_disk_full_fails_before_the_long_work(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 2**20, 2**20))
    out = tmp_path / "r"
    code, err = _run_cli(["distill", "--out", str(out), *FAST], capsys)
    assert code == 1 and "only 1.0 MiB free" in err and "need at least 50 MiB" in err
    assert not (out / "config.json").exists() and not (out / "checkpoints").exists()


def test_unwritable_output_fails_before_the_long_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    code, err = _run_cli(["distill", "--out", str(blocker / "run"), *FAST], capsys)
    assert code == 1 and "cannot write to run folder" in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_output_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, err = _run_cli(["distill", "--out", str(ro / "run"), *FAST], capsys)
    finally:
        ro.chmod(0o700)
    assert code == 1 and "cannot write to run folder" in err


def test_nan_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    import softdistill.distillation as distill_mod

    real, calls = distill_mod.outer_grads, []

    def diverging(*a, **kw):
        calls.append(1)
        loss, grads = real(*a, **kw)
        return (loss * float("nan") if len(calls) == 4 else loss), grads

    monkeypatch.setattr(distill_mod, "outer_grads", diverging)
    out = tmp_path / "r"
    argv = ["distill", "--out", str(out), *FAST, "--outer_steps", "6", "--checkpoint_every", "2"]
    code, err = _run_cli(argv, capsys)
    assert code == 1
    assert re.search(r"(?s)nan.*outer step 3.*checkpoints/last.pt.*lower lr.*init_lr", err)
    assert io.load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 2
    assert not (out / "synthetic.safetensors").exists()  # no result from a diverged run


def test_corrupt_run_file_is_a_runtime_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["distill", "--out", str(out), *FAST, "--outer_steps", "1"]) == 0
    data = (out / "synthetic.safetensors").read_bytes()
    (out / "synthetic.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    for cmd in (["evaluate", str(out)], ["report", str(out)], ["export", str(out)]):
        code, err = _run_cli(cmd, capsys)
        assert code == 1 and "corrupt or truncated" in err, cmd


def test_evaluate_baselines_and_scratch_protocol_flags(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["distill", "--out", str(out), *FAST, "--baselines", "random"]) == 0
    capsys.readouterr()
    argv = [
        "evaluate",
        str(out),
        "--quiet",
        "--baseline",
        "random,kmeans",
        "--baseline",
        "average",
        "knn",
        "--baseline_lr",
        "learned",
        "--baseline_draws",
        "2",
        "--knn_k",
        "3",
        "--protocol",
        "scratch",
        "--epochs",
        "2",
        "--archs",
        "mlp,lenet",
        "--scratch_n_nets",
        "2",
        "--scratch_baselines",
    ]
    assert main(argv) == 0
    ev = json.loads((out / "eval.json").read_text())
    assert list(ev["baselines"]) == [
        "random",
        "kmeans",
        "average",
        "knn",
        "knn_random",
        "knn_kmeans",
        "knn_average",
    ]
    for r in ev["baselines"].values():
        assert {"mean", "std", "per_net"} <= set(r) and 0 <= r["mean"] <= 1
    assert ev["baselines"]["random"]["lr_mode"] == "learned" and ev["baselines"]["knn"]["k"] == 3
    sc = ev["scratch"]
    assert sc["epochs"] == 2 and sc["distilled_arch"] == "mlp" and "lenet" in sc["skipped"]
    assert list(sc["archs"]["mlp"]) == ["distilled", "random", "kmeans", "average"]
    assert len(sc["archs"]["mlp"]["distilled"]["per_net"]) == 2
    printed = capsys.readouterr().out
    assert "baseline knn (k 3, p 2, reference synthetic)" in printed
    assert "| mlp |" in printed and "| lenet | skipped:" in printed
    # config.json is not changed by evaluate's flags
    assert json.loads((out / "config.json").read_text())["baselines"] == ["random"]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--baseline", "kmean"], "did you mean 'kmeans'"),
        (["--baseline", "knn", "--knn_k", "11"], "knn_k=11 exceeds the 10 synthetic examples"),
        (["--baseline_lr", "fast"], "'tuned', 'learned' or a positive number"),
        (["--protocol", "scratch", "--archs", "resnet"], "unknown scratch arch 'resnet'"),
        (["--protocol", "scratch", "--augment", "blur"], "unknown augmentation 'blur'"),
    ],
)
def test_evaluate_flag_errors(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert main(["distill", "--out", str(out), *FAST, "--baselines", "random"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--quiet", *flags]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_augment_without_kornia_is_a_usage_error(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "kornia" else real(name, *a)
    )
    argv = ["distill", "--out", str(tmp_path / "r"), *FAST, "--protocols", "scratch"]
    assert main([*argv, "--scratch_augment", "dsa"]) == 2
    assert "needs kornia" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_help_is_instant_it_imports_no_torch():
    """Building the parser and printing help must not import torch (seconds on a busy box)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from softdistill.cli import main\n"
        "for argv in (['--help'], ['distill', '--help'], ['train', '--help'], "
        "['evaluate', '--help'], ['export', '--help']):\n"
        "    assert main(argv) == 0, argv\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_distill_help_groups_every_option_with_help(capsys):
    import argparse

    from softdistill.cli import _subparser, build_parser

    parser = _subparser(build_parser(), "distill")
    titles = [g.title for g in parser._action_groups]
    for t in (
        "synthetic set",
        "outer loop",
        "networks",
        "text",
        "evaluation",
        "baselines",
        "protocol",
        "logging",
        "scale",
    ):
        assert any(x.startswith(t) for x in titles), t
    for a in parser._actions:
        if a.option_strings and a.help != argparse.SUPPRESS:
            assert a.help and a.help.strip() and not a.help.startswith("(default"), a.dest
            assert a.help.count("default") <= 1, a.help


def test_evaluate_merges_into_eval_json_and_records_each_entry(tmp_path):
    out = tmp_path / "run"
    assert main(["distill", "--out", str(out), *FAST]) == 0
    first = json.loads((out / "eval.json").read_text())
    names = set(first["baselines"])
    assert {"random", "kmeans", "average", "knn"} <= names
    assert first["made"]["baselines/kmeans"]["command"].startswith("softdistill distill")
    assert (
        main(["evaluate", str(out), "--baseline", "random", "--baseline_lr", "0.3", "--quiet"]) == 0
    )
    ev = json.loads((out / "eval.json").read_text())
    assert set(ev["baselines"]) == names  # nothing dropped
    for name in names - {"random"}:
        assert ev["baselines"][name] == first["baselines"][name]  # kept as they were
        assert ev["made"][f"baselines/{name}"] == first["made"][f"baselines/{name}"]
    assert ev["baselines"]["random"]["lr"] == 0.3  # replaced by the new evaluation
    assert "softdistill evaluate" in ev["made"]["baselines/random"]["command"]
    assert "softdistill evaluate" in ev["made"]["distilled"]["command"]


def test_one_held_out_evaluation_is_not_called_a_selection(tmp_path, capsys):
    out = tmp_path / "run"
    flags = [*FAST, "--outer_steps", "3", "--eval_every", "500", "--val_size", "50"]
    assert main(["distill", "--out", str(out), *flags]) == 0
    printed = capsys.readouterr().out
    assert "one held-out evaluation only" in printed and "best on" not in printed
    sel = json.loads((out / "eval.json").read_text())["protocol"]["selected"]
    assert sel["evaluations"] == 1 and sel["step"] == 3


def test_overwrite_removes_a_previous_export(tmp_path):
    out = tmp_path / "run"
    assert main(["distill", "--out", str(out), *FAST]) == 0
    assert main(["export", str(out), "--format", "npz", "--quiet"]) == 0
    assert (out / "export" / "synthetic.npz").is_file()
    assert main(["distill", "--out", str(out), "--overwrite", *FAST]) == 0
    assert not (out / "export").exists()


def test_interrupt_names_the_run_folder_and_disk_full_names_the_path(tmp_path, capsys, monkeypatch):
    import errno

    from softdistill import api

    out = tmp_path / "run"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "distill", interrupted)
    assert main(["distill", "--out", str(out), *FAST]) == 130
    err = capsys.readouterr().err
    assert f"continue with: softdistill distill --resume --out {out}" in err
    assert "RUN_DIR" not in err

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(api, "distill", disk_full)
    assert main(["distill", "--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert f"no space left on the disk of {out}" in err and "--resume" in err


def test_config_that_is_not_a_file_and_checkpoint_that_is_a_pickle(tmp_path, capsys):
    assert main(["distill", "--config", "/dev/null", "--quiet"]) == 2
    assert "/dev/null is not a regular file" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(["distill", "--out", str(out), *FAST]) == 0
    import pickle

    (out / "checkpoints" / "last.pt").write_bytes(pickle.dumps({"step": object()}))
    assert main(["distill", "--out", str(out), "--resume", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "is not a softdistill checkpoint" in err
    assert "weights_only" not in err and len(err.strip().splitlines()) == 2


@pytest.mark.parametrize(
    "n_cpus,load,cap,expected",
    [
        (2, 0.1, 2, 2),
        (2, 2.0, 2, 1),
        (2, 1.4, 2, 1),
        (16, 3.2, 16, 13),
        (16, 0.0, 8, 8),
        (4, 9, 4, 1),
    ],
)
def test_threads_are_the_cpus_other_processes_leave_free(n_cpus, load, cap, expected):
    from softdistill.cli.common import auto_threads

    assert auto_threads(n_cpus, load, cap) == expected


def test_other_processes_load_is_counted_now_not_as_the_lagging_minute_average(monkeypatch):
    import os

    from softdistill.cli import common

    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.0, 0.5))  # a job that just ended
    looks = iter([1, 1, 2, 1, 1])  # runnable threads, this one included
    monkeypatch.setattr(common, "_runnable", lambda: next(looks))
    assert common._others_load(interval=0) == pytest.approx(0.2)
    assert common.auto_threads(2, 0.2, 2) == 2  # both CPUs, where the average gave 1
    monkeypatch.setattr(common, "_runnable", lambda: None)  # no /proc: the load average
    assert common._others_load(interval=0) == 1.9


def test_the_run_log_says_how_many_threads_and_threads_flag_sets_them(tmp_path, capsys):
    loud = [f for f in FAST if f != "--quiet"]  # the log shows the thread line
    assert main(["distill", "--out", str(tmp_path / "r"), *loud]) == 0
    assert "threads: 1 (OMP_NUM_THREADS)" in capsys.readouterr().err
    assert main(["distill", "--out", str(tmp_path / "s"), *loud, "--threads", "2"]) == 0
    assert "threads: 2 (--threads)" in capsys.readouterr().err
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    assert json.loads((tmp_path / "s" / "run.json").read_text())["threads"] == 2


def test_early_stop_on_a_held_out_target_or_patience(tmp_path, capsys):
    base = [*FAST, "--outer_steps", "40", "--eval_every", "2", "--val_size", "50"]
    out = tmp_path / "target"
    assert main(["distill", "--out", str(out), *base, "--stop_at_val_acc", "0.01"]) == 0
    ev = json.loads((out / "eval.json").read_text())
    sel = ev["protocol"]["selected"]
    assert ev["protocol"]["outer_steps"] == 2 == sel["stopped_early"] == sel["step"]
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 2
    out = tmp_path / "patience"
    assert main(["distill", "--out", str(out), *base, "--patience", "1", "--lr", "1e-9"]) == 0
    sel = json.loads((out / "eval.json").read_text())["protocol"]["selected"]
    # a tiny outer lr: the held-out accuracy stays as it was, no evaluation improves on the first
    assert sel["step"] == 2 and sel["stopped_early"] == 4 and sel["evaluations"] == 2
    assert main(["distill", "--out", str(tmp_path / "x"), *FAST, "--patience", "2"]) == 2
    assert "set val_size > 0" in capsys.readouterr().err


def test_a_command_line_is_merged_and_validated_once(tmp_path, monkeypatch):
    """The CLI merges defaults < file < flags into a validated Config; the API takes that
    Config as it is instead of merging and validating it again."""
    from softdistill.config import Config, is_merged, merge

    calls = []
    validate = Config.validate

    def counted(self):
        calls.append(1)
        return validate(self)

    monkeypatch.setattr(Config, "validate", counted)
    assert main(["distill", "--out", str(tmp_path / "r"), *FAST]) == 0
    assert len(calls) == 1
    cfg = merge({"lr": 0.5})
    assert is_merged(cfg)
    cfg.lr = -1.0  # changed after the merge: the API checks it again
    assert not is_merged(cfg)
    import softdistill as sd
    from softdistill.errors import ConfigError

    with pytest.raises(ConfigError, match="lr must be positive"):
        sd.distill(cfg, out=str(tmp_path / "bad"))
