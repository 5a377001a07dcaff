"""Distill one setting, then evaluate it with every baseline and the from-scratch protocol on
several architectures; write the tables as markdown.

    python benchmarks/protocol_table.py OUT_DIR [--config FILE] [--dataset mnist ...]

Distillation settings come from ``--config`` and/or flags. Writes ``OUT_DIR/run/`` (the run
folder) and ``OUT_DIR/protocol.md``: the replay accuracy beside the baselines, the
cross-architecture table of the scratch protocol (mean ± std over ``--n-nets`` networks), and
the wall time of each stage. ``make protocol-table`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from softdistill.cli import main as cli
from softdistill.protocol import format_scratch_table

DISTILL_FLAGS = (
    "dataset",
    "arch",
    "per_class",
    "n_batches",
    "n_epochs",
    "outer_steps",
    "batch_size",
    "init_lr",
    "lr",
    "decay_every",
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--config", default=None, help="config file of the run to distill")
    p.add_argument(
        "--data-dir",
        default=os.environ.get("SOFTDISTILL_DATA"),
        required=not os.environ.get("SOFTDISTILL_DATA"),
        help="the datasets' folder (default: $SOFTDISTILL_DATA)",
    )
    # Distillation settings: given ones override --config (else the library's defaults).
    for flag in DISTILL_FLAGS:
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None)
    p.add_argument("--arch-args", default=None, help="arch_args as JSON, e.g. '{\"width\": 32}'")
    p.add_argument("--epochs", type=int, default=300, help="scratch protocol epochs")
    p.add_argument("--archs", default="lenet,convnet,mlp,alexcifarnet")
    p.add_argument("--n-nets", type=int, default=5, help="scratch nets per arch (>= 5)")
    p.add_argument("--augment", default=None, help="e.g. dsa (needs kornia)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-scratch-baselines", action="store_true")
    return p.parse_args(argv)


def pct(r: dict) -> str:
    return f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}"


def main(argv=None) -> int:
    a = parse_args(argv)
    run = a.out / "run"
    distill = ["distill", "--out", str(run), "--overwrite", "--data-dir", a.data_dir]
    distill += ["--config", a.config] if a.config else []
    for flag in DISTILL_FLAGS:
        if getattr(a, flag) is not None:
            distill += [f"--{flag}", str(getattr(a, flag))]
    distill += ["--device", a.device, "--baselines", "random", "--quiet"]
    if a.arch_args:
        distill += ["--arch_args", a.arch_args]
    evaluate = [
        "evaluate", str(run), "--baseline", "random,kmeans,average,knn",
        "--protocol", "scratch", "--epochs", str(a.epochs), "--archs", a.archs,
        "--scratch_n_nets", str(a.n_nets), "--device", a.device,
    ]  # fmt: skip
    if not a.no_scratch_baselines:
        evaluate.append("--scratch_baselines")
    if a.augment:
        evaluate += ["--augment", a.augment]
    times = {}
    for name, argv_ in (("distill", distill), ("evaluate", evaluate)):
        t0 = time.perf_counter()
        rc = cli(argv_)
        times[name] = time.perf_counter() - t0
        if rc != 0:
            print(
                f"protocol_table: `softdistill {shlex.join(argv_)}` failed ({rc})", file=sys.stderr
            )
            return rc
    ev = json.loads((run / "eval.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    if a.device == "cpu":
        device = "cpu"
    lines = [
        f"# Baselines and protocols: {cfg['dataset']}, distilled with {cfg['arch']} "
        f"({cfg['per_class']} per class x {cfg['n_batches']} batches, {cfg['nets']} init)",
        "",
        f"Machine: {device} ({platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads). Produced by:",
        "",
        "```bash",
        f"python benchmarks/protocol_table.py {shlex.join(sys.argv[1:] if argv is None else argv)}",
        f"# = softdistill {shlex.join(distill)}",
        f"#   softdistill {shlex.join(evaluate)}",
        "```",
        "",
        f"Distillation: {ev['protocol'].get('outer_steps')} outer steps, "
        f"{times['distill']:.0f} s; evaluation (all below): {times['evaluate']:.0f} s.",
        "",
        "## Replay protocol (the learned steps, test accuracy %)",
        "",
        "| set | accuracy | details |",
        "| --- | --- | --- |",
        f"| before training | {pct(ev['before'])} | |",
        f"| distilled ({ev['protocol']['n_steps']} steps) | {pct(ev['distilled'])} | |",
    ]
    for name, r in ev["baselines"].items():
        detail = (
            f"k={r['k']}, p={r['p']:g}, reference {r['reference']}"
            if "k" in r
            else f"lr {r.get('lr', r['lr_mode'])}, {len(r['per_net'])} trainings"
        )
        lines.append(f"| {name} | {pct(r)} | {detail} |")
    sc = ev["scratch"]
    lines += [
        "",
        f"## From scratch: {sc['epochs']} epochs SGD (lr {sc['lr']}, momentum {sc['momentum']}, "
        f"wd {sc['weight_decay']}), {sc['labels']} labels, augment {sc['augment']}, "
        f"{sc['n_nets']} nets per cell (test accuracy %, mean ± std)",
        "",
        format_scratch_table(sc),
        "",
    ]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "protocol.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
