"""CIFAR-10 AlexCifarNet fixed init, 100 soft-label images, on a GPU within a time budget.

    python benchmarks/gpu_reproduce.py OUT_DIR [--budget 110] [--device cuda] [--data-dir DIR]
    make gpu-reproduce OUT=OUT_DIR

The preset (configs/cifar10_alexcifarnet_fixed_100.yaml) asks for far more outer steps than a
few minutes allow. This script times a short probe run (30 outer steps), then runs the preset
with ``outer_steps`` cut to fit ``--budget`` seconds of distillation, its lr-decay period
scaled by the same factor, and ``eval_every`` at a tenth of the run, so metrics.jsonl holds the
accuracy curve. Everything it ran is in OUT_DIR/summary.md (commands, GPU, steps/s, accuracy,
baselines, curve) and OUT_DIR/summary.json; the run folders are OUT_DIR/probe and
OUT_DIR/<preset>. Decoded CIFAR arrays are cached outside OUT_DIR ($SOFTDISTILL_CACHE, default
a temporary folder), so OUT_DIR stays small.

Tested on a CPU with tiny settings (``--device cpu --budget 5 --set batch_size=64``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESET = "cifar10_alexcifarnet_fixed_100"


def softdistill(args: list[str], log) -> float:
    """Run ``python -m softdistill ARGS``; return its wall time. Raise on failure."""
    cmd = [sys.executable, "-m", "softdistill", *args]
    log.write(f"$ {shlex.join(['softdistill', *args])}\n")
    log.flush()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"gpu_reproduce.py: softdistill exited with {proc.returncode}; see log")
    return wall


def read_preset(name: str) -> dict:
    import yaml

    return yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out", help="output folder (created)")
    p.add_argument("--budget", type=float, default=110.0, help="seconds of distillation")
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", default=PRESET)
    p.add_argument(
        "--data-dir",
        default=os.environ.get("SOFTDISTILL_DATA"),
        required=not os.environ.get("SOFTDISTILL_DATA"),
        help="the datasets' folder (default: $SOFTDISTILL_DATA)",
    )
    p.add_argument("--probe-steps", type=int, default=30)
    p.add_argument("--baselines", nargs="+", default=["random", "kmeans"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config overrides for both runs (testing)")  # fmt: skip
    args = p.parse_args(argv)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SOFTDISTILL_CACHE", tempfile.mkdtemp(prefix="softdistill-cache-"))
    preset = read_preset(args.preset)
    extra = []
    for kv in args.set:
        k, _, v = kv.partition("=")
        extra += [f"--{k}", *v.split()]
    common = ["distill", "--config", f"configs/{args.preset}.yaml", "--data-dir", args.data_dir]
    common += ["--device", args.device, "--overwrite", "--quiet", "--baselines", *args.baselines]
    t_start = time.perf_counter()
    with open(out / "log.txt", "w") as log:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        log.write(f"device {args.device}; GPU: {gpu}; torch {torch.__version__}\n")
        # 1. probe: seconds per outer step on this machine
        probe_dir = out / "probe"
        probe = [*common, "--out", str(probe_dir), "--outer_steps", str(args.probe_steps)]
        probe += ["--eval_every", "0", "--baselines", "random", *extra]
        softdistill(probe, log)
        sps = json.loads((probe_dir / "eval.json").read_text())["protocol"]["seconds_per_step"]
        # 2. the preset, cut to the budget
        full = int(preset["outer_steps"])
        steps = max(args.probe_steps, min(full, int(args.budget / sps)))
        decay = max(1, round(int(preset.get("decay_every", 250)) * steps / full))
        every = max(1, steps // 10)
        run_dir = out / args.preset
        run = [*common, "--out", str(run_dir), "--outer_steps", str(steps)]
        run += ["--decay_every", str(decay), "--eval_every", str(every), *extra]
        wall = softdistill(run, log)
    ev = json.loads((run_dir / "eval.json").read_text())
    curve = [
        (d["step"], d["test_acc"])
        for d in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
        if "test_acc" in d
    ]
    summary = {
        "preset": args.preset,
        "device": args.device,
        "gpu": gpu,
        "probe_seconds_per_step": sps,
        "outer_steps": steps,
        "preset_outer_steps": full,
        "decay_every": decay,
        "seconds_per_step": ev["protocol"].get("seconds_per_step"),
        "run_wall_seconds": round(wall, 1),
        "total_wall_seconds": round(time.perf_counter() - t_start, 1),
        "distilled": ev["distilled"],
        "baselines": ev.get("baselines", {}),
        "curve": curve,
        "commands": [shlex.join(["softdistill", *probe]), shlex.join(["softdistill", *run])],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")

    def pct(r):
        return f"{100 * r['mean']:.2f}% ± {100 * r['std']:.2f} ({len(r['per_net'])} nets)"

    lines = [
        f"# {args.preset} on {gpu if args.device.startswith('cuda') else args.device}",
        "",
        f"- outer steps: {steps} of the preset's {full} (budget {args.budget:g} s; decay "
        f"every {decay}), {summary['seconds_per_step']} s per outer step",
        f"- distilled: {pct(ev['distilled'])}",
        *(f"- baseline {k}: {pct(v)}" for k, v in summary["baselines"].items() if "mean" in v),
        f"- wall time: run {wall:.0f} s, whole script {summary['total_wall_seconds']:.0f} s",
        "- test accuracy during distillation: "
        + ", ".join(f"{s}: {100 * a:.1f}%" for s, a in curve),
        "",
        "Commands:",
        "",
        *(f"    {c}" for c in summary["commands"]),
    ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
